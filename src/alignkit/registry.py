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
    Capabilities, each fixed or a function of the options, and each read by the engine (never the name):
    needs_reference: the engine computes reference log-probs (and loads a reference) only when this is true;
    length_normalized: the loss compares mean token log-probs, so the engine logs `logps/*` as means, as TRL does.
    """

    name: str
    help: str
    options: type = NoOptions
    pairwise_loss: Callable[..., Any] | None = None
    online: Any = None
    needs_reference: bool | Callable[[Any], bool] = True
    length_normalized: bool | Callable[[Any], bool] = False
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
    """A pair transform enabled by `train --<name>`; its options are `--<name>-<option>` flags.

    apply(chosen_mask (B, Tc) bool, rejected_mask (B, Tr) bool, **options) -> (chosen_mask, rejected_mask):
    masks over response tokens (EOS included); the transform returns the masks the objective should sum over.
    It composes with every objective that has a pairwise loss: those are the objectives that sum masked token
    log-probs, whoever registered them.
    """

    name: str
    help: str
    apply: Callable[..., Any]
    options: type = NoOptions
    paper: str = ""
    plugin: str = ""

    kind_name = "transform"


@dataclass(frozen=True)
class Decoder:
    """A next-token distribution strategy, chosen with `decode --<name>` (`sample` is the default).

    make(options) -> an object the sampling loop drives; its contract is documented in `alignkit.engine.sample`.
    Its options are `--<name>-<option>` flags of `decode`, accepted only with the `--<name>` switch, so two
    decoders may both have a `weight`.
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


@dataclass(frozen=True)
class Resource:
    """A name that stands for a model or a data set (`toy:instruct`, `toy:prefs`), or a family of specs that need
    a step before transformers or alignkit's readers can open them (any `*.gguf` file).

    kind: 'model' (a --model / --ref-model / --conformative-base-model spec) or 'data' (a data, prompts or prepare spec).
    resolve(spec) -> str: the folder or file the spec stands for; called when a command needs it, so it may be slow
        (it may convert a file once into a cache) and may import torch.
    matches(spec) -> bool for a family of specs; None: the record stands for its `name` exactly.
    """

    name: str
    help: str
    kind: Literal["model", "data"]
    resolve: Callable[[str], str]
    matches: Callable[[str], bool] | None = None
    priority: int = 0
    group: str = ""   # what a command's one-line notice calls it when it stands in by default ("the toy world")
    plugin: str = ""

    kind_name = "resource"


@dataclass(frozen=True)
class World:
    """An enumerable world: every response to every prompt can be listed and scored, so a model's (or a
    sampler's) expected reward, entropy, KL and length are exact, not estimates. A model belongs to a world when
    its folder's alignkit-model.json names it (`"world": "toy"`); `eval --exact`, `decode --exact` and the
    toy world's before/after figures at the end of training read that.

    evaluate(model, tokenizer, ref_model=None) -> {"per_prompt": [...], "mean": {"expected_reward", "entropy",
        "kl", "expected_length", "outside_mass"}}; kl is None without a reference model.
    evaluate_decoder(decoder, models, tokenizer, settings, ref_model=None) -> the same, for the distribution the
        sampler draws from (models: role -> model as the sampling loop takes them).
    reference: the model spec a KL is measured against when the user names none.
    """

    name: str
    help: str
    evaluate: Callable[..., dict]
    evaluate_decoder: Callable[..., dict]
    reference: str = ""
    plugin: str = ""

    kind_name = "world"


@dataclass(frozen=True)
class Kind:
    """One kind of record: its class, the hook that registers it, and how `alignkit plugins` titles it."""

    record: type
    hook: str
    title: str


# The one table of record kinds: plugin loading, `alignkit plugins` and the docs read it (hookspecs declare the
# same hooks; tests/cli/test_plugins.py checks the two agree).
KINDS: dict[str, Kind] = {
    "objective": Kind(Objective, "register_objectives", "objectives"),
    "transform": Kind(Transform, "register_transforms", "transforms"),
    "decoder": Kind(Decoder, "register_decoders", "decoders"),
    "metric": Kind(Metric, "register_metrics", "metrics"),
    "reward": Kind(RewardSource, "register_rewards", "reward sources"),
    "format": Kind(Format, "register_formats", "formats"),
    "resource": Kind(Resource, "register_resources", "resources"),
    "world": Kind(World, "register_worlds", "worlds"),
}


class Registry:
    """Records by kind and name. Duplicate names are an error naming both plugins."""

    def __init__(self) -> None:
        self._tables: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        self.failures: list[tuple[str, str]] = []  # (plugin, one-line reason) for plugins that were skipped
        self.plugins: list[str] = []  # every plugin that loaded, in load order (some register nothing yet)

    def add(self, record: Any, plugin: str) -> None:
        """Validate one record (see `check`) and add it under its plugin's name."""
        self.check(record, plugin)
        self._tables[record.kind_name][record.name] = dataclasses.replace(record, plugin=plugin)

    def check(self, record: Any, plugin: str) -> None:
        """Everything that would break a command later, refused now: a foreign object, a bad name, options that are
        not a dataclass of flag-able fields, a flag that clashes with another, a name another plugin has."""
        from alignkit.config import check_options, reserved_flags  # the contract's own config; no torch

        kind = getattr(record, "kind_name", None)
        if kind not in self._tables or not isinstance(record, KINDS[kind].record):
            raise TypeError(f"plugin '{plugin}' registered {record!r}, which is not an alignkit.registry record")
        name = getattr(record, "name", None)
        if not isinstance(name, str) or not name.strip() or any(c.isspace() for c in name):
            raise TypeError(f"plugin '{plugin}' registered a {kind} with the name {name!r}; names are one word")
        options = getattr(record, "options", NoOptions)
        if not (isinstance(options, type) and dataclasses.is_dataclass(options)):
            raise TypeError(f"{kind} '{name}' from plugin '{plugin}': options must be a dataclass")
        check_options(options, f"{kind} '{name}' from plugin '{plugin}'")
        if kind == "objective":  # an objective's options are flags of `train <name>` beside TrainConfig's
            taken = reserved_flags() | set(self.names("transform"))
            clash = sorted(f.name for f in dataclasses.fields(options) if f.name in taken)
            if clash:
                raise TypeError(f"objective '{name}' from plugin '{plugin}': option '{clash[0]}' has the name of a "
                                "train flag (--" + clash[0].replace("_", "-") + "); rename it")
        if kind == "transform":
            clash = [o.name for o in self.all("objective")
                     if name in {f.name for f in dataclasses.fields(o.options)}]
            if name in reserved_flags() or clash:
                raise TypeError(f"transform '{name}' from plugin '{plugin}': its switch --{name} clashes with "
                                + (f"an option of objective '{clash[0]}'" if clash else "a train flag"))
        table = self._tables[kind]
        if name in table:
            other = table[name].plugin
            raise UserError(
                f"{kind} '{name}' is registered by both plugin '{other}' and plugin '{plugin}'; "
                "uninstall one or limit plugins with ALIGNKIT_LOAD_PLUGINS"
            )

    def drop_plugin(self, kind: str, plugin: str) -> None:
        """Remove every record of `kind` that `plugin` registered (a plugin that failed halfway leaves nothing)."""
        table = self._tables[kind]
        for name in [n for n, r in table.items() if r.plugin == plugin]:
            del table[name]

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


@dataclass
class Run:
    """What the training lifecycle hooks see (alignkit.hookspecs: train_started, step_logged, train_finished).

    A plugin keeps what it needs between hooks in `state` under its own name (e.g. the toy world keeps its
    starting figures there); everything else is read-only.
    """

    config: Any                 # the TrainConfig of the run
    objective: str              # the objective's registered name
    resolved: dict              # the flat resolved config, as <output>/alignkit.yaml holds it
    output: Any                 # pathlib.Path of the run folder
    tokenizer: Any
    policy: Any                 # the model being trained (the starting model in train_started)
    total_steps: int
    state: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PairwiseLoss:
    """What a pairwise objective returns: per-example losses and detached implicit rewards, all `(B,)`."""

    losses: Any
    chosen_rewards: Any
    rejected_rewards: Any
    extra: dict = field(default_factory=dict)  # further detached per-batch metrics to log
