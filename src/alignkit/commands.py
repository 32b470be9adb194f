"""From option dataclasses to Typer commands, and from flags + YAML + the model's defaults to resolved configs.

A command is a list of `Section`s, each one dataclass of options: its fields become flags (`opt(...)` metadata:
help, choices, argument), YAML keys and `--print-config` lines at once. A section that belongs to a switch
(`--conformative`, `--poet`) has its flags prefixed with the switch's name (`--conformative-weight`, YAML
`conformative_weight`), so two decoders may both have a `weight`; its flags are refused unless the switch is on.
Resolution, lowest to highest: the dataclass default, the model's own defaults (a section's `defaults`), the YAML
file (`--config`), the flags given on the command line.
"""
from __future__ import annotations

import dataclasses
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Optional

import typer

from alignkit import config as C
from alignkit import plugins
from alignkit.errors import UserError

META_KEYS = {"command", "objective"}  # allowed in any --config file; checked against the command run


@dataclass
class Section:
    """A group of flags that resolves to one dataclass instance."""

    key: str                      # its name in Resolved.sections (e.g. "train", "objective", "conformative")
    cls: type                     # its dataclass
    switch: str | None = None     # the switch that enables it: its flags are --<switch>-<field>
    # defaults(values the user gave for this section) -> defaults that sit between the dataclass and the YAML
    defaults: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def param(self, f: dataclasses.Field) -> str:
        """The Typer parameter and YAML key of a field: `weight`, or `conformative_weight` in a switch's section."""
        return f"{self.switch}_{f.name}" if self.switch else f.name

    def flag(self, f: dataclasses.Field) -> str:
        return f"--{self.switch}-{C.flag_name(f)[2:]}" if self.switch else C.flag_name(f)


@dataclass
class Resolved:
    """What a command gets: one dataclass instance per section, and the flat resolved config."""

    command: str
    sections: dict[str, Any]
    enabled: dict[str, bool]   # transform / decoder switches (`--poet`, `--conformative`)
    flat: dict[str, Any]       # what `--print-config` prints and train writes to alignkit.yaml
    given: set[str]            # parameters the user set (flag or YAML), for messages about defaults


def error(message: str, code: int = 2, prefix: str = "error") -> typer.Exit:
    """One line on stderr, printed by the main process only: under a launcher every process fails alike, and the
    user should read the reason once, not once per process."""
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{prefix}: {message}", file=sys.stderr)
    return typer.Exit(code)


def _typer_param(name: str, flag: str, f: dataclasses.Field, annotation: Any) -> inspect.Parameter:
    meta = f.metadata
    default = None if f.default is C.REQUIRED else f.default
    if f.default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        default = f.default_factory()  # type: ignore[misc]
    kwargs: dict[str, Any] = {"help": meta.get("help", ""), "show_default": default is not None}
    if meta.get("choices"):
        annotation = Literal[tuple(meta["choices"])]  # Typer shows and checks these as choices
    if meta.get("metavar") or meta.get("argument"):
        kwargs["metavar"] = meta.get("metavar") or f.name.upper()
    if meta.get("argument"):
        info = typer.Argument(default if f.default is not C.REQUIRED else None, **kwargs)
    else:
        names = [f"{flag}/--no-{flag[2:]}"] if annotation is bool else [flag]
        info = typer.Option(default, *names, **kwargs)
    # Every value is optional at the click level: REQUIRED is enforced after YAML has been merged.
    ann = annotation if annotation is bool or default is not None else Optional[annotation]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=ann)


def _keyword(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def make_command(command: str, sections: list[Section], switches: dict[str, str],
                 run: Callable[[Resolved], None]) -> Callable[..., None]:
    """A Typer callback whose flags are the sections' dataclass fields (+ switches), resolved then `run`."""
    params: list[inspect.Parameter] = [
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
    ]
    owner: dict[str, str] = {}  # parameter -> section key; plugins are validated at loading, so a clash is a bug
    for section in sections:
        types = C.field_types(section.cls)
        for f in dataclasses.fields(section.cls):
            name = section.param(f)
            if name in owner:
                raise RuntimeError(f"option '{name}' of {section.key} clashes with {owner[name]} in 'alignkit "
                                   f"{command}'")
            owner[name] = section.key
            params.append(_typer_param(name, section.flag(f), f, types[f.name]))
    for name, help in switches.items():
        if name in owner:
            raise RuntimeError(f"switch --{name} clashes with an option of {owner[name]} in 'alignkit {command}'")
        owner[name] = "switch"
        params.append(_keyword(name, bool, typer.Option(False, f"--{name}", help=help)))
    params.append(_keyword("config", Optional[str], typer.Option(
        None, "--config", help="YAML file of options; flags given on the command line override it.")))
    params.append(_keyword("print_config", bool, typer.Option(
        False, "--print-config", help="Print the fully resolved config and exit.")))
    # Typer reads options with their positional arguments first; arguments must precede keyword-only options.
    params.sort(key=lambda p: 0 if p.name == "ctx" else (1 if isinstance(p.default, typer.models.ArgumentInfo)
                                                          else 2))
    params = [p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in params]

    def callback(ctx: typer.Context, **kwargs: Any) -> None:
        try:
            resolved = resolve(command, sections, switches, kwargs, ctx)
            if kwargs.get("print_config"):
                print(C.dump_yaml(resolved.flat), end="")
                return
            announce_defaults(resolved, sections)
            run(resolved)
        except UserError as exc:
            raise error(str(exc), exc.exit_code, exc.prefix) from None
        except KeyboardInterrupt:  # before a command could install its own handling (loading models, say)
            raise error(f"alignkit {command} stopped before it wrote anything", 130, "interrupted") from None

    callback.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    callback.__annotations__ = {p.name: p.annotation for p in params}
    return callback


def resolve(command: str, sections: list[Section], switches: dict[str, str], kwargs: dict[str, Any],
            ctx: Any) -> Resolved:
    """defaults <- the model's defaults <- YAML <- explicit flags, for every section; unknown YAML keys, and a
    switch's options without the switch, are errors."""
    def given(name: str) -> bool:
        if ctx is None:
            return name in kwargs
        # Compared by name: Typer may vendor its own click, whose enum is not click.core.ParameterSource.
        source = ctx.get_parameter_source(name)
        return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")

    yaml_values: dict[str, Any] = {}
    source = "the config"
    if kwargs.get("config"):
        source = kwargs["config"]
        yaml_values = C.load_yaml(source)
        known = {s.param(f) for s in sections for f in dataclasses.fields(s.cls)} | set(switches) | META_KEYS
        C.check_unknown(yaml_values, known, source)
        _check_meta(command, yaml_values, source)
    enabled = {}
    for name in switches:
        value = kwargs[name] if given(name) else yaml_values.get(name, False)
        if not isinstance(value, bool):
            raise UserError(f"'{name}' in {source} should be true or false, got {value!r}")
        enabled[name] = value
    built: dict[str, Any] = {}
    flat: dict[str, Any] = {"command": command.split()[0]}
    if " " in command:
        flat["objective"] = command.split()[1]
    flat.update(enabled)
    user: set[str] = set()
    for section in sections:
        fields = {section.param(f): f.name for f in dataclasses.fields(section.cls)}
        cli_values = {field: kwargs[p] for p, field in fields.items() if given(p)}
        file_values = {field: yaml_values[p] for p, field in fields.items() if p in yaml_values}
        mine = [p for p in fields if given(p) or p in yaml_values]
        user |= set(mine)
        if section.switch and not enabled.get(section.switch) and mine:
            flag = "--" + mine[0].replace("_", "-")
            raise UserError(f"{flag} applies with --{section.switch} only; add --{section.switch}")
        if section.defaults is not None:
            file_values = {**section.defaults({**file_values, **cli_values}), **file_values}
        built[section.key] = C.build(section.cls, file_values, cli_values, source)
        flat.update({section.param(f): C.plain(getattr(built[section.key], f.name))
                     for f in dataclasses.fields(section.cls)})
    return Resolved(command, built, enabled, flat, user)


def announce_defaults(r: Resolved, sections: list[Section]) -> None:
    """One line when named resources (the toy world's models and data) stand in for inputs the user did not name,
    for the sections this run reads (a switch's options only when the switch is on)."""
    reg = plugins.registry()
    named = {res.name: res for res in reg.all("resource") if res.matches is None}
    values = {}
    for section in sections:
        instance = r.sections.get(section.key)
        if section.switch and not r.enabled.get(section.switch):
            continue
        for f in dataclasses.fields(section.cls):
            value = getattr(instance, f.name)
            unread = f.metadata.get("mode") not in (None, "online" if r.flat.get("online") else "pairwise")
            if isinstance(value, str) and value in named and section.param(f) not in r.given and not unread:
                values[section.param(f)] = value
    if values:
        groups = sorted({named[v].group or "registered resources" for v in values.values()})
        flags = " / ".join("--" + k.replace("_", "-") for k in values)
        print(f"using {' and '.join(groups)}: {', '.join(f'{k}={v}' for k, v in values.items())} (pass {flags} "
              "for your own)", file=sys.stderr)


def _check_meta(command: str, yaml_values: dict[str, Any], source: str) -> None:
    parts = command.split()
    for key, expected in zip(("command", "objective"), parts):
        value = yaml_values.get(key)
        if value is not None and value != expected:
            raise UserError(f"{source} is a config for '{key}: {value}', but this is 'alignkit {' '.join(parts)}'")
