"""Reading and checking a frontier spec (the YAML file `alignkit frontier SPEC.yaml` runs).

    model: toy:instruct                      # the starting model of every method, and the reference point
    data: toy:prefs-onpolicy                 # pairs for offline training
    prompts: toy:prompts                     # prompts for online training and decoders (optional)
    eval: {exact: true}                      # or {reward: toy, num_samples: 8, diversity: distinct-2, ...}
    methods:
      - name: dpo
        train: {objective: dpo, epochs: 1}   # any `alignkit train dpo` flag, as a YAML key
        sweep: {beta: [1, 2, 5]}             # one or more knobs; the grid is their product

Every mistake is one UserError naming the key, where it is and the keys that would be valid, before anything
runs: a spec that starts is a spec whose every point builds its command's config.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignkit import config as C
from alignkit.errors import UserError, did_you_mean
from alignkit.eval.frontier.sections import Section, decode_sections, owner_of, train_sections

TOP_KEYS = ("model", "data", "prompts", "eval", "methods")
METHOD_KEYS = ("name", "train", "decode", "sweep")
# Keys frontier sets itself on every command: a spec that set them would break resume or comparability.
OWN_TRAIN_KEYS = ("output", "resume")
OWN_DECODE_KEYS = ("output", "num_samples", "exact")
# The exact toy figures that can be an axis: (kind, higher is better). expected_length and kl are descriptive.
EXACT_FIGURES = {"expected_reward": ("quality", True), "outside_mass": ("quality", False),
                 "entropy": ("diversity", True)}
EXACT_EVAL_KEYS = ("exact", "quality", "diversity", "ref_model")
# `alignkit eval` flags a sampled spec may set; frontier sets the inputs, the output and the metric list.
EVAL_OWN = ("generations", "output", "model", "exact", "metrics", "ref_model", "num_samples")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class EvalSpec:
    """How every point is measured: exactly (toy world) or from samples, and which two figures are the axes."""

    exact: bool
    quality: str
    diversity: str
    eval_values: dict[str, Any] = field(default_factory=dict)    # `alignkit eval` flags (sampled) / ref_model
    decode_values: dict[str, Any] = field(default_factory=dict)  # `alignkit decode` flags when sampling

    def identity(self) -> dict[str, Any]:
        return {"exact": self.exact, "quality": self.quality, "diversity": self.diversity,
                "eval": self.eval_values, "decode": self.decode_values}


@dataclass
class Method:
    """One line of the frontier: a trained objective or a decoder, its fixed keys and its sweep."""

    name: str
    kind: str                      # 'train' or 'decode'
    record: Any                    # the Objective or Decoder record
    sections: list[Section]        # the command's flag groups (sections.train_sections / decode_sections)
    fixed: dict[str, Any]          # keys given under train: / decode: (without objective / decoder)
    sweep: dict[str, list[Any]]    # knob -> values, in the spec's order


@dataclass
class Spec:
    path: str
    model: str
    data: str | None
    prompts: str | None
    eval: EvalSpec
    methods: list[Method]


def _choices(names: Any) -> str:
    return ", ".join(sorted(names))


def _unknown(key: str, where: str, choices: Any, extra: str = "") -> UserError:
    choices = list(choices)
    return UserError(f"unknown key '{key}' in {where}{did_you_mean(key, choices)} "
                     f"(choices: {_choices(choices)}{extra})")


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{where} should be a mapping of keys to values, got {value!r}")
    return {str(k).replace("-", "_"): v for k, v in value.items()}


def _string(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise UserError(f"{where} should be a string (a model, data or prompt spec), got {value!r}")
    return value


def load(path: str, registry: Any) -> Spec:
    """The checked spec at `path`."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise UserError(f"frontier spec '{path}' does not exist")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"frontier spec '{path}' is not valid YAML: {exc}".splitlines()[0]) from None
    top = _mapping(raw, f"frontier spec '{path}'")
    for key in top:
        if key not in TOP_KEYS:
            raise _unknown(key, path, TOP_KEYS)
    model = _string(top.get("model"), f"'model' in {path}") or C.TrainConfig().model
    methods_raw = top.get("methods")
    if not isinstance(methods_raw, list) or not methods_raw:
        raise UserError(f"{path} needs 'methods:', a list of methods (each with name, train: or decode:, sweep:)")
    ev = parse_eval(_mapping(top.get("eval"), f"'eval' in {path}"), registry, path)
    prompts = _string(top.get("prompts"), f"'prompts' in {path}")
    if not ev.exact and prompts is not None:  # sampled points decode the spec's prompts unless eval names others
        ev.decode_values.setdefault("prompts", prompts)
    methods = [parse_method(m, i, registry, ev, path) for i, m in enumerate(methods_raw)]
    names = [m.name for m in methods]
    for name in names:
        if names.count(name) > 1:
            raise UserError(f"two methods are named '{name}' in {path}; method names must differ")
    return Spec(path, model, _string(top.get("data"), f"'data' in {path}"), prompts, ev, methods)


def parse_eval(values: dict[str, Any], registry: Any, path: str) -> EvalSpec:
    where = f"eval: of {path}"
    exact = values.get("exact", False)
    if not isinstance(exact, bool):
        raise UserError(f"'exact' in {where} should be true or false, got {exact!r}")
    if exact:
        for key in values:
            if key not in EXACT_EVAL_KEYS:
                raise _unknown(key, where, EXACT_EVAL_KEYS, "; sampling keys need exact: false")
        quality, diversity = values.get("quality", "expected_reward"), values.get("diversity", "entropy")
        for axis, name in (("quality", quality), ("diversity", diversity)):
            names = [n for n, (kind, _) in EXACT_FIGURES.items() if kind == axis]
            if name not in names:
                raise UserError(f"'{axis}: {name}' in {where} is no exact {axis} figure"
                                f"{did_you_mean(str(name), names)} (choices: {_choices(names)})")
        ref = _string(values.get("ref_model"), f"'ref_model' in {where}")
        return EvalSpec(True, quality, diversity, {"ref_model": ref} if ref else {})
    eval_keys = [f for f in _fields(C.EvalConfig) if f not in EVAL_OWN]
    decode_keys = [f for f in _fields(C.DecodeConfig) if f not in ("model", "output")]
    allowed = {"exact", "quality", "diversity", *eval_keys, *decode_keys}
    for key in values:
        if key not in allowed:
            raise _unknown(key, where, allowed)
    quality = values.get("quality", "reward")
    diversity = values.get("diversity", "distinct-2")
    for axis, name in (("quality", quality), ("diversity", diversity)):
        names = [m.name for m in registry.all("metric") if m.kind == axis]
        if name not in names:
            raise UserError(f"'{axis}: {name}' in {where} is no {axis} metric{did_you_mean(str(name), names)} "
                            f"(choices: {_choices(names)})")
        needs = {"reward": "reward", "embedder": "embedder"}
        for need in registry.get("metric", name).needs:
            if values.get(needs.get(need, need)) is None:
                hint = " (or exact: true on the toy world)" if need == "reward" else ""
                raise UserError(f"metric '{name}' in {where} needs '{need}: SPEC'{hint}")
    eval_values = {k: v for k, v in values.items() if k in eval_keys}
    decode_values = {k: v for k, v in values.items() if k in decode_keys}
    # Enough samples per prompt for a diversity figure: eval's own default for `eval --model`, not decode's 1.
    decode_values.setdefault("num_samples", C.EvalConfig().num_samples)
    eval_values = _typed(C.EvalConfig, eval_values, where)
    decode_values = _typed(C.DecodeConfig, decode_values, where)
    if decode_values["num_samples"] < 2:
        raise UserError(f"'num_samples' in {where} should be at least 2: diversity compares a prompt's samples")
    return EvalSpec(False, quality, diversity, eval_values, decode_values)


def _fields(cls: type) -> list[str]:
    import dataclasses

    return [f.name for f in dataclasses.fields(cls)]


def _typed(cls: type, values: dict[str, Any], where: str) -> dict[str, Any]:
    instance = C.build(cls, values, {}, where)
    return {k: getattr(instance, k) for k in values}


def parse_method(raw: Any, index: int, registry: Any, ev: EvalSpec, path: str) -> Method:
    if not isinstance(raw, dict):
        raise UserError(f"method {index + 1} in {path} should be a mapping with name, train: or decode:, sweep:")
    raw = {str(k): v for k, v in raw.items()}
    name = raw.get("name")
    where = f"method {index + 1} of {path}" if not isinstance(name, str) else f"method '{name}' of {path}"
    for key in raw:
        if key not in METHOD_KEYS:
            raise _unknown(key, where, METHOD_KEYS)
    if not isinstance(name, str) or not NAME.match(name):
        got = "" if name is None else f", got {name!r}" + (" (YAML reads on/off/yes/no as booleans: quote it)"
                                                           if isinstance(name, bool) else "")
        raise UserError(f"{where} needs 'name:' of letters, digits, '.', '_' or '-' (it names the run "
                        f"folders){got}")
    if ("train" in raw) == ("decode" in raw):
        raise UserError(f"{where} needs exactly one of 'train:' (an objective to train) or 'decode:' (a decoder)")
    kind = "train" if "train" in raw else "decode"
    body = _mapping(raw[kind], f"'{kind}' in {where}")
    record_key = "objective" if kind == "train" else "decoder"
    record_name = body.pop(record_key, None)
    table = registry.names(record_key)
    if record_name not in table:
        what = "names no" if record_name is None else f"has {record_key} '{record_name}', which is no"
        raise UserError(f"'{kind}' in {where} {what} registered {record_key}"
                        f"{did_you_mean(str(record_name), table) if record_name else ''} "
                        f"(choices: {_choices(table)})")
    record = registry.get(record_key, record_name)
    sections = train_sections(registry, record) if kind == "train" else decode_sections(record)
    own = OWN_TRAIN_KEYS if kind == "train" else OWN_DECODE_KEYS
    command = f"alignkit train {record.name}" if kind == "train" else f"alignkit decode --{record.name}"
    known = [n for s in sections for n in s.names() if n not in own]
    for key in body:
        if key in own:
            raise UserError(f"'{key}' in {kind}: of {where} is set by frontier itself (each point writes "
                            f"into DIR/runs/<point>/); remove it")
        if owner_of(sections, key) is None:
            raise _unknown(key, f"{kind}: of {where}", [record_key, *known], f"; see {command} --help")
    sweep_raw = raw.get("sweep")
    if not isinstance(sweep_raw, dict) or not sweep_raw:
        raise UserError(f"{where} has an empty grid: give 'sweep:' one or more knobs with values, "
                        f"e.g. sweep: {{{_example_knob(sections, record)}: [...]}}")
    sweep: dict[str, list[Any]] = {}
    for knob, values in sweep_raw.items():
        knob = str(knob).replace("-", "_")
        if knob in (record_key, *own) or owner_of(sections, knob) is None:
            options = [n for s in sections if s.key in ("objective", "decoder") for n in s.names()]
            listed = f"the {record.name} options {_choices(options)}, or " if options else ""
            raise UserError(f"unknown sweep knob '{knob}' in {where}{did_you_mean(knob, known)} (choices: "
                            f"{listed}any {command} flag; see {command} --help)")
        if knob in body:
            raise UserError(f"'{knob}' in {where} is both fixed under {kind}: and swept; keep one")
        if not isinstance(values, list):
            raise UserError(f"sweep knob '{knob}' in {where} should be a list of values, e.g. {knob}: "
                            f"[{values!r}] (a single fixed value goes under {kind}:)")
        if not values:
            raise UserError(f"sweep knob '{knob}' in {where} has no values: an empty grid; give at least one")
        if len({repr(v) for v in values}) < len(values):
            raise UserError(f"sweep knob '{knob}' in {where} repeats a value: {values}")
        sweep[knob] = values
    return Method(name, kind, record, sections, body, sweep)


def _example_knob(sections: list[Section], record: Any) -> str:
    options = [n for s in sections if s.key in ("objective", "decoder") for n in s.names()]
    return options[0] if options else "seed"
