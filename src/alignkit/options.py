"""Options as flags: the `opt()` dataclass field and how a dataclass of them is filled and checked.

    @dataclass
    class MyOptions:
        beta: float = opt(0.1, "KL strength.", above=0)     # becomes --beta, the YAML key beta, a --print-config line
    values = build(MyOptions, yaml_values, cli_values)     # defaults <- YAML <- flags, each value checked

The command configs (alignkit.config) and every plugin's options dataclass are made of these fields; alignkit.config
re-exports the names below, the public face plugins import them from (`from alignkit.config import opt`).
"""
from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import field
from typing import Any

from alignkit.errors import UserError, did_you_mean
from alignkit.ranges import Range, check_field, out_of_range

class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


def opt(default: Any = None, help: str = "", *, choices: tuple[str, ...] | None = None,
        argument: bool = False, flag: str | None = None, metavar: str | None = None, mode: str | None = None,
        min: float | None = None, max: float | None = None, above: float | None = None,
        below: float | None = None) -> Any:
    """A dataclass field that is also a CLI flag. `default=REQUIRED` makes it mandatory (after YAML).
    mode: 'online' or 'pairwise' for a training option (TrainConfig's or an objective's) that only that training
    mode reads; giving it a non-default value in the other mode is an error (see `check_mode`).
    min / max: closed ends of a number's valid range, above / below: open ones (`above=0, max=1` is (0, 1]);
    `build` refuses a value outside it in one line (alignkit.ranges). A malformed range is a TypeError here."""
    meta = {"help": help, "choices": choices, "argument": argument, "flag": flag, "metavar": metavar, "mode": mode,
            "range": Range.of(min=min, max=max, above=above, below=below)}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def flag_name(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


FLAG_TYPES = (bool, int, float, str)


def flag_type(annotation: Any) -> Any:
    """The scalar type behind `T`, `T | None` or `list[str]`, or None when the CLI cannot take it as a flag."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is list:
        return str if args == [str] else None
    if args and typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return flag_type(args[0]) if len(args) == 1 else None
    return annotation if annotation in FLAG_TYPES else None


def check_options(cls: type, where: str) -> None:
    """Every field of a plugin's options dataclass must be a flag the CLI can build: bool, int, float, str, one of
    those or None, or list[str]; raises TypeError naming the field otherwise (so a bad plugin fails at loading,
    inside its isolation, not when `alignkit --help` builds its flags)."""
    try:
        types = field_types(cls)
    except Exception as exc:  # an annotation that does not resolve
        raise TypeError(f"{where}: options type hints do not resolve ({exc})") from None
    for f in dataclasses.fields(cls):
        if flag_type(types[f.name]) is None:
            raise TypeError(f"{where}: option '{f.name}' has type {types[f.name]}, which is not a flag type "
                            "(bool, int, float, str, one of them or None, list[str])")
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
            raise TypeError(f"{where}: option '{f.name}' needs a default")
        valid = f.metadata.get("range")
        if valid is not None:  # a range made by hand, not by opt(), may be anything
            if not isinstance(valid, Range):
                raise TypeError(f"{where}: option '{f.name}' has range {valid!r}, which is not an "
                                "alignkit.ranges.Range")
            check_field(f.name, valid, flag_type(types[f.name]), f.default, where)


# ----------------------------------------------------------------------------------------------------------
# Resolution: defaults <- the model's defaults <- YAML <- explicit flags.


def _check_type(name: str, value: Any, annotation: Any, source: str) -> Any:
    """Coerce a YAML value to the field's type, or raise a UserError naming the key."""
    if value is None:
        return None
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        annotation = args[0]
        origin = typing.get_origin(annotation)
    if origin is list:
        values = value if isinstance(value, list) else [value]
        return [str(v) for v in values]
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads `5e-4` (no dot) as a string; it is the number the user meant
            try:
                return float(value)
            except ValueError:
                pass
    elif annotation is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    else:
        return value
    raise UserError(f"'{name}' in {source} should be {annotation.__name__}, got {value!r}")


def build(cls: type, yaml_values: dict[str, Any], cli_values: dict[str, Any], source: str = "the config",
          flag: Callable[[dataclasses.Field], str] = flag_name,
          key: Callable[[dataclasses.Field], str] = lambda f: f.name) -> Any:
    """An instance of dataclass `cls`: defaults, then yaml_values, then cli_values (only flags the user gave).
    Each value given is checked against the field's choices and range, and a text value must not be empty, all
    before the dataclass's own __post_init__. `flag` and `key` name a field in messages, as a flag or as its key in
    `source` (a switch's section prefixes both: --conformative-weight, conformative_weight)."""
    types = field_types(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in cli_values:
            values[f.name] = cli_values[f.name]
        elif f.name in yaml_values:
            values[f.name] = _check_type(key(f), yaml_values[f.name], types[f.name], source)
        if f.name in values and f.metadata.get("choices") and values[f.name] not in f.metadata["choices"]:
            choices = f.metadata["choices"]
            raise UserError(f"'{f.name}' must be one of {', '.join(choices)}; got {values[f.name]!r}"
                            f"{did_you_mean(str(values[f.name]), choices)}")
        name = ("argument " + f.name.upper() if f.metadata.get("argument") else flag(f)) if f.name in cli_values \
            else f"'{key(f)}' in {source}"
        if isinstance(values.get(f.name), str) and not values[f.name].strip():  # "" would mean "." as a path
            raise UserError(f"{name} is empty; give a value, or leave it out for its default")
        if isinstance(values.get(f.name), list) and "" in values[f.name]:  # `--stop ""` would stop nothing, silently
            raise UserError(f"{name} is given an empty value; give a value, or leave it out")
        if f.name in values and f.metadata.get("range") is not None:
            problem = out_of_range(name, values[f.name], f.metadata["range"])
            if problem:
                raise UserError(problem)
    instance = cls(**values)
    for f in dataclasses.fields(cls):
        if getattr(instance, f.name) is REQUIRED:
            where = "argument " + f.name.upper() if f.metadata.get("argument") else flag_name(f)
            raise UserError(f"missing {where} (or '{f.name}:' in a --config file)")
    return instance


def check_ranges(instance: Any) -> None:
    """Refuse a field outside its declared range, for a dataclass made in Python rather than by `build` (which
    checks the same before making it): an options class may call this from its __post_init__."""
    for f in dataclasses.fields(instance):
        problem = f.metadata.get("range") and out_of_range(flag_name(f), getattr(instance, f.name), f.metadata["range"])
        if problem:
            raise UserError(problem)


def check_mode(options: Any, mode: str) -> None:
    """Refuse an option set away from its default in a training mode that ignores it (e.g. --min-reward offline)."""
    if not dataclasses.is_dataclass(options):
        return
    for f in dataclasses.fields(options):
        only = f.metadata.get("mode")
        if only and only != mode and getattr(options, f.name) != f.default:
            fix = "add --online" if only == "online" else "drop --online"
            raise UserError(f"{flag_name(f)} applies to {only} training only; {fix}")


def mode_options(options: Any, mode: str) -> dict[str, Any]:
    """The options as keyword arguments for a training mode: fields marked for the other mode are left out."""
    return {f.name: getattr(options, f.name) for f in dataclasses.fields(options)
            if f.metadata.get("mode") in (None, mode)}


def check_unknown(yaml_values: dict[str, Any], known: set[str], source: str) -> None:
    for key in yaml_values:
        if key not in known:
            raise UserError(f"unknown key '{key}' in {source}{did_you_mean(key, known)}")


def to_dict(instance: Any) -> dict[str, Any]:
    return dataclasses.asdict(instance)


def plain(value: Any) -> Any:
    """A resolved value as YAML writes it (lists copied, so the flat config never aliases a section's list)."""
    return list(value) if isinstance(value, list) else value
