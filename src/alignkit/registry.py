"""Typed records for everything a plugin registers, and the Registry that holds them by kind and name.

The registry is the single source of truth for names: `--help`, `alignkit plugins`, docs tables and test
parametrisation all read it. Capabilities are data on the record; the engine reads them, never a name.
Nothing here imports torch.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from alignkit.errors import UserError, did_you_mean


@dataclass(frozen=True)
class NoOptions:
    """Options dataclass for a record that takes none."""


def _capability(value: bool | Callable[[Any], bool], options: Any) -> bool:
    # A capability is either fixed (True/False) or depends on the chosen options (e.g. QEMPO's constraint).
    return bool(value(options)) if callable(value) else bool(value)


@dataclass(frozen=True)
class Objective:
    """A training objective.

    pairwise_loss: pure function for offline preference pairs,
        loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, *, chosen_tokens, rejected_tokens, **options)
        on `(B,)` summed response log-probs (ref_* are None when the objective needs no reference) and `(B,)`
        response token counts; returns `PairwiseLoss(losses (B,), chosen_rewards (B,), rejected_rewards (B,))`,
        rewards detached. Length normalisation, if any, happens inside from the token counts.
    online: an `OnlineSpec` for online (sampled, rewarded) training, or None.
    needs_reference / length_normalized / needs_reward: capabilities, fixed or a function of the options.
    """

    name: str
    help: str
    options: type = NoOptions
    pairwise_loss: Callable[..., Any] | None = None
    online: Any = None
    needs_reference: bool | Callable[[Any], bool] = True
    length_normalized: bool | Callable[[Any], bool] = False
    needs_reward: bool | Callable[[Any], bool] = False
    paper: str = ""
    plugin: str = ""

    kind_name = "objective"

    @property
    def modes(self) -> tuple[str, ...]:
        """Training modes this objective supports: 'pairwise' (offline) and/or 'online'."""
        return tuple(m for m, impl in (("pairwise", self.pairwise_loss), ("online", self.online)) if impl)

    def requires_reference(self, options: Any) -> bool:
        return _capability(self.needs_reference, options)

    def is_length_normalized(self, options: Any) -> bool:
        return _capability(self.length_normalized, options)

    def requires_reward(self, options: Any) -> bool:
        return _capability(self.needs_reward, options)


@dataclass(frozen=True)
class OnlineSpec:
    """What an objective gives the online engine (alignkit.engine.online): a shaped return and its multipliers.

    init_state(options) -> dict[str, float]: the multipliers at step 0 (e.g. {"lambda": 10.0, "eta": 0.0}); they
        are checkpointed and logged every step under their names.
    returns(rewards, policy_logps, ref_logps, state, **options) -> (N,) tensor: the return of each sample, from
        (N,) rewards, (N,) detached sequence log-probs under the policy and the reference (None when the objective
        needs no reference). The engine normalises returns within each prompt's group and uses them as advantages
        of a policy-gradient step, so only their differences within a group and their relative scale matter.
    update(state, stats, **options) -> dict[str, float]: the multipliers for the next step, from the step's
        stats {"reward": batch mean reward, "kl": batch mean KL estimate or None}: dual ascent lives here.
    """

    init_state: Callable[..., dict]
    returns: Callable[..., Any]
    update: Callable[..., dict] = lambda state, stats, **options: state


@dataclass(frozen=True)
class Transform:
    """A pair transform enabled by `train --<name>`.

    apply(chosen_mask (B, Tc) bool, rejected_mask (B, Tr) bool, **options) -> (chosen_mask, rejected_mask):
    masks over response tokens (EOS included); the transform returns the masks the objective should sum over.
    composes_with: objective names it may be combined with; None means every pairwise objective.
    """

    name: str
    help: str
    apply: Callable[..., Any]
    options: type = NoOptions
    composes_with: tuple[str, ...] | None = None
    paper: str = ""
    plugin: str = ""

    kind_name = "transform"


@dataclass(frozen=True)
class Decoder:
    """A next-token distribution strategy, chosen with `decode --<name>` (`sample` is the default).

    make(options) -> an object the sampling loop drives; its contract is documented in `alignkit.engine.sample`.
    """

    name: str
    help: str
    make: Callable[[Any], Any]
    options: type = NoOptions
    paper: str = ""
    plugin: str = ""

    kind_name = "decoder"


@dataclass(frozen=True)
class Metric:
    """An evaluation metric computed per prompt over that prompt's samples.

    compute: contract documented in `alignkit.eval`; needs: names of extra inputs (e.g. 'reward', 'embedder').
    """

    name: str
    help: str
    kind: Literal["quality", "diversity"]
    higher_is_better: bool
    compute: Callable[..., Any]
    needs: tuple[str, ...] = ()
    plugin: str = ""

    kind_name = "metric"


@dataclass(frozen=True)
class RewardSource:
    """A source of rewards r(prompt, completion) for online training and eval, chosen by a SPEC string.

    matches(spec) -> bool says whether this source handles the spec ('toy', 'pkg.mod:fn', a model path);
    load(spec) -> callable(prompts: list[str], completions: list[str]) -> list[float].
    """

    name: str
    help: str
    matches: Callable[[str], bool]
    load: Callable[[str], Callable[[list[str], list[str]], list[float]]]
    priority: int = 0
    plugin: str = ""

    kind_name = "reward"


@dataclass(frozen=True)
class Format:
    """A raw data-set format that `prepare` detects and converts to canonical rows.

    detect(row) -> bool on one raw row; convert(row) -> canonical row ({prompt, chosen, rejected} or {prompt},
    where each is a string or a list of {role, content} messages); convert raises ValueError with a reason for a
    bad row. Higher priority formats are tried first.
    """

    name: str
    help: str
    kind: Literal["pairwise", "prompt"]
    detect: Callable[[dict], bool]
    convert: Callable[[dict], dict]
    priority: int = 0
    plugin: str = ""

    kind_name = "format"


RECORD_TYPES: dict[str, type] = {
    "objective": Objective,
    "transform": Transform,
    "decoder": Decoder,
    "metric": Metric,
    "reward": RewardSource,
    "format": Format,
}


class Registry:
    """Records by kind and name. Duplicate names are an error naming both plugins."""

    def __init__(self) -> None:
        self._tables: dict[str, dict[str, Any]] = {kind: {} for kind in RECORD_TYPES}
        self.failures: list[tuple[str, str]] = []  # (plugin, one-line reason) for plugins that were skipped
        self.plugins: list[str] = []  # every plugin that loaded, in load order (some register nothing yet)

    def add(self, record: Any, plugin: str) -> None:
        kind = getattr(record, "kind_name", None)
        if kind not in self._tables:
            raise TypeError(f"plugin '{plugin}' registered {record!r}, which is not an alignkit.registry record")
        if not dataclasses.is_dataclass(getattr(record, "options", NoOptions)):
            raise TypeError(f"{kind} '{record.name}' from plugin '{plugin}': options must be a dataclass")
        table = self._tables[kind]
        if record.name in table:
            other = table[record.name].plugin
            raise UserError(
                f"{kind} '{record.name}' is registered by both plugin '{other}' and plugin '{plugin}'; "
                "uninstall one or limit plugins with ALIGNKIT_LOAD_PLUGINS"
            )
        table[record.name] = dataclasses.replace(record, plugin=plugin)

    def get(self, kind: str, name: str) -> Any:
        table = self._tables[kind]
        if name not in table:
            raise UserError(
                f"unknown {kind} '{name}'{did_you_mean(name, table)} (alignkit plugins --all lists all)"
            )
        return table[name]

    def names(self, kind: str) -> list[str]:
        return sorted(self._tables[kind])

    def all(self, kind: str) -> list[Any]:
        return [self._tables[kind][n] for n in self.names(kind)]

    def __contains__(self, key: tuple[str, str]) -> bool:
        kind, name = key
        return name in self._tables[kind]

    def records(self) -> Iterable[Any]:
        for kind in self._tables:
            yield from self.all(kind)


@dataclass(frozen=True)
class PairwiseLoss:
    """What a pairwise objective returns: per-example losses and detached implicit rewards, all `(B,)`."""

    losses: Any
    chosen_rewards: Any
    rejected_rewards: Any
    extra: dict = field(default_factory=dict)  # further detached per-batch metrics to log
