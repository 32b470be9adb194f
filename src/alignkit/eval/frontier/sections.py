"""Which keys a frontier spec may set, read from the registry and the command configs, and their flags.

A method's `train:` keys are `alignkit train <objective>`'s flags: TrainConfig's fields, the objective's options
and each transform's switch and options. A `decode:` method's keys are `alignkit decode`'s: DecodeConfig's fields
and the decoder's options. Nothing here keeps a list of flags by hand, so a new objective option is a sweep knob
the moment its plugin registers it. `flag_for` is the one place that turns an option into a command-line flag.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from alignkit import config as C
from alignkit.errors import UserError
from alignkit.registry import NoOptions


@dataclass(frozen=True)
class Section:
    """One group of flags of a command: its dataclass, and the record it belongs to (objective, decoder...)."""

    key: str                   # 'train', 'objective', 'transform', 'switch', 'decode', 'decoder', 'eval'
    cls: type                  # the dataclass whose fields are the flags (NoOptions for a bare switch)
    owner: str = ""            # the objective / transform / decoder name, '' for a command's own config
    switch: str | None = None  # the switch whose options these are (`--poet`, `--conformative`)

    def names(self) -> list[str]:
        if self.key == "switch":  # a transform's on/off switch (`--poet`) is a key of its own name
            return [self.owner]
        return [f.name for f in dataclasses.fields(self.cls)]


def flag_for(section: Section, name: str) -> str:
    """The command-line flag of option `name` of `section`: the one mapping from spec keys to flags.

    A field's flag is `config.flag_name` (its name, or its own `flag=`); the options of a switch are scoped to it
    (`--conformative-weight`, `--poet-<option>`), as the CLI builds them (alignkit.commands.Section.flag, which
    this layer may not import; tests/eval/test_frontier_spec.py checks every flag against the commands' --help).
    """
    if section.key == "switch":
        return f"--{section.owner}"
    flag = C.flag_name(next(f for f in dataclasses.fields(section.cls) if f.name == name))
    return f"--{section.switch}-{flag[2:]}" if section.switch else flag


def to_argv(section: Section, name: str, value: Any) -> list[str]:
    """`--flag value` for one option, the way Typer reads it: booleans as `--x` / `--no-x`, lists repeated,
    None left out (the command's default then applies)."""
    flag = flag_for(section, name)
    if value is None:
        return []
    if isinstance(value, bool):
        if section.key == "switch":
            return [flag] if value else []
        return [flag] if value else ["--no-" + flag[2:]]
    if isinstance(value, list):
        return [part for v in value for part in (flag, str(v))]
    return [flag, str(value)]


def _options(cls: type) -> type | None:
    return None if cls is NoOptions or not dataclasses.fields(cls) else cls


def train_sections(registry: Any, objective: Any) -> list[Section]:
    """`alignkit train <objective>`'s flags, grouped as cli.py groups them."""
    sections = [Section("train", C.TrainConfig)]
    if _options(objective.options):
        sections.append(Section("objective", objective.options, objective.name))
    if "pairwise" in objective.modes:  # transforms compose with the pairwise losses only (as in cli.py)
        for t in registry.all("transform"):
            sections.append(Section("switch", NoOptions, t.name))
            if _options(t.options):
                sections.append(Section("transform", t.options, t.name, switch=t.name))
    return sections


def decode_sections(decoder: Any) -> list[Section]:
    """`alignkit decode --<decoder>`'s flags."""
    sections = [Section("decode", C.DecodeConfig)]
    if _options(decoder.options):  # `sample` is decode's default and has no switch: its options are plain
        switch = None if decoder.name == "sample" else decoder.name
        sections.append(Section("decoder", decoder.options, decoder.name, switch=switch))
    return sections


def owner_of(sections: list[Section], name: str) -> Section | None:
    for s in sections:
        if name in s.names():
            return s
    return None


def typed_values(sections: list[Section], values: dict[str, Any], where: str) -> dict[str, Any]:
    """The values coerced to their fields' types and checked as the command would (types, choices, the options'
    own __post_init__ checks such as qempo's gamma range), so a bad point fails before anything runs.

    Returns {name: typed value} for the given names only: `beta: 1` and `beta: 1.0` are the same point."""
    typed: dict[str, Any] = {}
    for s in sections:
        if s.key == "switch":
            if s.owner in values:
                if not isinstance(values[s.owner], bool):
                    raise UserError(f"'{s.owner}' in {where} should be true or false, got {values[s.owner]!r}")
                typed[s.owner] = values[s.owner]
            continue
        mine = {k: v for k, v in values.items() if k in s.names()}
        try:
            instance = C.build(s.cls, mine, {}, where)
        except UserError as exc:  # the options' own checks do not know which point they are checking
            raise exc if where in str(exc) else UserError(f"{where}: {exc}") from None
        except (TypeError, ValueError) as exc:  # an options class that checks its values with a plain error
            raise UserError(f"{where}: {exc}") from None
        typed.update({k: getattr(instance, k) for k in mine})
    return typed


def argv(sections: list[Section], values: dict[str, Any]) -> list[str]:
    """The flags for `values`, in the order of the sections' fields (stable, so a command line reads the same)."""
    out: list[str] = []
    for s in sections:
        for name in s.names():
            if name in values:
                out += to_argv(s, name, values[name])
    return out
