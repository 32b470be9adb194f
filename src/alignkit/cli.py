"""The `alignkit` command line: prepare / train / decode / eval / plugins / validate.

Thin by design: parse flags, resolve the config (defaults <- YAML <- flags), look records up in the registry,
call the engine. The surface follows the registry: one `train` subcommand per objective (flags from its options
dataclass), a `--<name>` flag on `train` per transform and on `decode` per decoder. Importing this module must not
import torch or transformers (tests/cli/test_light_import.py checks), so engines are imported inside commands.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Optional

import typer

from alignkit import config as C
from alignkit import plugins
from alignkit.errors import UserError, did_you_mean
from alignkit.registry import NoOptions, Registry

META_KEYS = {"command", "objective"}  # allowed in any --config file; checked against the command run


@dataclass
class Section:
    """A group of flags that resolves to one dataclass instance."""

    key: str        # name of the section in the resolved config (e.g. "train", "objective", "poet")
    cls: type       # its dataclass


@dataclass
class Resolved:
    """What a command gets: one dataclass instance per section, and the flat resolved config."""

    command: str
    sections: dict[str, Any]
    enabled: dict[str, bool]   # transform / decoder switches (`--poet`, `--conformative`)
    flat: dict[str, Any]       # what `--print-config` prints and train writes to alignkit.yaml


class AlignkitGroup(typer.core.TyperGroup):
    """A Typer group whose unknown subcommand error suggests the nearest name."""

    def resolve_command(self, ctx, args):  # type: ignore[override]
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            ctx.fail(f"unknown command '{name}'{did_you_mean(name, self.list_commands(ctx))} (see --help)")
        return super().resolve_command(ctx, args)


def _error(message: str, code: int = 2) -> typer.Exit:
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code)


def _typer_param(f: dataclasses.Field, annotation: Any) -> inspect.Parameter:
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
        names = [C.flag_name(f)]
        if annotation is bool:
            names = [f"{C.flag_name(f)}/--no-{C.flag_name(f)[2:]}"]
        info = typer.Option(default, *names, **kwargs)
    # Every value is optional at the click level: REQUIRED is enforced after YAML has been merged.
    ann = annotation if annotation is bool or default is not None else Optional[annotation]
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=ann)


def _switch_param(name: str, help: str) -> inspect.Parameter:
    info = typer.Option(False, f"--{name}", help=help)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=bool)


def make_command(command: str, sections: list[Section], switches: dict[str, str],
                 run: Callable[[Resolved], None]) -> Callable[..., None]:
    """A Typer callback whose flags are the sections' dataclass fields (+ switches), resolved then `run`."""
    params: list[inspect.Parameter] = [
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
    ]
    owner: dict[str, str] = {}
    for section in sections:
        types = C.field_types(section.cls)
        for f in dataclasses.fields(section.cls):
            if f.name in owner:
                raise RuntimeError(f"option '{f.name}' of {section.key} clashes with {owner[f.name]} "
                                   f"in 'alignkit {command}'")
            owner[f.name] = section.key
            params.append(_typer_param(f, types[f.name]))
    for name, help in switches.items():
        if name in owner:
            raise RuntimeError(f"switch --{name} clashes with an option of {owner[name]} in 'alignkit {command}'")
        owner[name] = "switch"
        params.append(_switch_param(name, help))
    params.append(inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],
                                    default=typer.Option(None, "--config", help="YAML file of options; flags "
                                                         "given on the command line override it.")))
    params.append(inspect.Parameter("print_config", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                                    default=typer.Option(False, "--print-config",
                                                         help="Print the fully resolved config and exit.")))
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
            _announce_toy(resolved)
            run(resolved)
        except UserError as exc:
            raise _error(str(exc), exc.exit_code) from None

    callback.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    callback.__annotations__ = {p.name: p.annotation for p in params}
    return callback


def resolve(command: str, sections: list[Section], switches: dict[str, str], kwargs: dict[str, Any],
            ctx: Any) -> Resolved:
    """defaults <- YAML <- explicit flags, for every section; unknown YAML keys are errors."""
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
        known = {f.name for s in sections for f in dataclasses.fields(s.cls)} | set(switches) | META_KEYS
        C.check_unknown(yaml_values, known, source)
        _check_meta(command, yaml_values, source)
    built: dict[str, Any] = {}
    flat: dict[str, Any] = {"command": command.split()[0]}
    if " " in command:
        flat["objective"] = command.split()[1]
    for section in sections:
        names = {f.name for f in dataclasses.fields(section.cls)}
        cli_values = {n: kwargs[n] for n in names if given(n)}
        built[section.key] = C.build(section.cls, {k: v for k, v in yaml_values.items() if k in names},
                                     cli_values, source)
        flat.update(C.to_dict(built[section.key]))
    enabled = {}
    for name in switches:
        value = kwargs[name] if given(name) else yaml_values.get(name, False)
        if not isinstance(value, bool):
            raise UserError(f"'{name}' in {source} should be true or false, got {value!r}")
        enabled[name] = value
        flat[name] = value
    return Resolved(command, built, enabled, flat)


TOY_KEYS = ("model", "data", "prompts", "base_model")


def _announce_toy(r: Resolved) -> None:
    """One line when the embedded toy world stands in for inputs the user did not name: the toy values of the
    sections this run reads (a switch's options only when the switch is on: no base model for plain decoding)."""
    if r.command.split()[0] not in ("train", "decode"):
        return
    values = {f.name: getattr(section, f.name) for key, section in r.sections.items()
              if dataclasses.is_dataclass(section) and r.enabled.get(key, True)
              for f in dataclasses.fields(section) if f.name in TOY_KEYS}
    if r.command.startswith("train"):  # online training reads prompts, offline training reads pairs
        values.pop("data" if r.flat.get("online") else "prompts", None)
    toy = {k: v for k, v in values.items() if isinstance(v, str) and v.startswith("toy:")}
    if toy:
        flags = " / ".join("--" + k.replace("_", "-") for k in toy)
        print(f"using the toy world: {', '.join(f'{k}={v}' for k, v in toy.items())} (pass {flags} for your own)",
              file=sys.stderr)


def _check_meta(command: str, yaml_values: dict[str, Any], source: str) -> None:
    parts = command.split()
    for key, expected in zip(("command", "objective"), parts):
        value = yaml_values.get(key)
        if value is not None and value != expected:
            raise UserError(f"{source} is a config for '{key}: {value}', but this is 'alignkit {' '.join(parts)}'")


# ----------------------------------------------------------------------------------------------------------
# Runners: each engine is imported only when its command runs.


def _runner(module: str, what: str) -> Callable[..., Any]:
    try:
        return importlib.import_module(module).run
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            raise _error(f"{what} is not available in this build yet ({module} is missing)", 1) from None
        raise


def _run_prepare(r: Resolved) -> None:
    _runner("alignkit.data.prepare", "alignkit prepare")(r.sections["prepare"])


def _train_runner(objective_name: str) -> Callable[[Resolved], None]:
    def run(r: Resolved) -> None:
        registry = plugins.registry()
        objective = registry.get("objective", objective_name)
        transforms = [(registry.get("transform", name), r.sections.get(name, NoOptions()))
                      for name, on in r.enabled.items() if on]
        _runner("alignkit.engine.train", "alignkit train")(
            r.sections["train"], objective, r.sections["objective"], transforms, r.flat)
    return run


def _decode_run(r: Resolved) -> None:
    registry = plugins.registry()
    chosen = [name for name, on in r.enabled.items() if on]
    if len(chosen) > 1:
        raise UserError(f"choose one decoder, not {' and '.join('--' + c for c in chosen)}")
    decoder = registry.get("decoder", chosen[0] if chosen else "sample")
    options = r.sections.get(decoder.name, NoOptions())
    _runner("alignkit.engine.decode", "alignkit decode")(r.sections["decode"], decoder, options)


def _run_eval(r: Resolved) -> None:
    _runner("alignkit.eval.run", "alignkit eval")(r.sections["eval"])


def _run_frontier(r: Resolved) -> None:
    _runner("alignkit.eval.frontier", "alignkit frontier")(r.sections["frontier"])


# ----------------------------------------------------------------------------------------------------------
# The app, built from the registry.


def _options_section(key: str, cls: type) -> list[Section]:
    return [] if cls is NoOptions or not dataclasses.fields(cls) else [Section(key, cls)]


def build_app(registry: Registry | None = None) -> typer.Typer:
    registry = registry or plugins.registry()
    app = typer.Typer(name="alignkit", cls=AlignkitGroup, no_args_is_help=True, add_completion=False,
                      pretty_exceptions_enable=False, rich_markup_mode=None,
                      help="Align language models to preferences without flattening their diversity.")

    app.command("prepare", help="Turn a preference or prompt data set into a tokenized data set on disk.")(
        make_command("prepare", [Section("prepare", C.PrepareConfig)], {}, _run_prepare))

    train = typer.Typer(cls=AlignkitGroup, no_args_is_help=True, rich_markup_mode=None,
                        help="Train a policy; one subcommand per objective (alignkit plugins lists them).")
    transforms = registry.all("transform")
    for objective in registry.all("objective"):
        usable = transforms if "pairwise" in objective.modes else []  # transforms compose with every pairwise loss
        sections = [Section("train", C.TrainConfig), *_options_section("objective", objective.options)]
        for t in usable:
            sections += _options_section(t.name, t.options)
        switches = {t.name: t.help for t in usable}
        help = objective.help + (f" [{objective.paper}]" if objective.paper else "")
        train.command(objective.name, help=help)(
            make_command(f"train {objective.name}", sections, switches, _train_runner(objective.name)))
    app.add_typer(train, name="train")

    decoders = [d for d in registry.all("decoder") if d.name != "sample"]
    sections = [Section("decode", C.DecodeConfig)]
    if ("decoder", "sample") in registry:
        sections += _options_section("sample", registry.get("decoder", "sample").options)
    for d in decoders:
        sections += _options_section(d.name, d.options)
    app.command("decode", help="Sample completions for prompts with a chosen decoder.")(
        make_command("decode", sections, {d.name: d.help for d in decoders}, _decode_run))

    app.command("eval", help="Measure quality and diversity of generations side by side.")(
        make_command("eval", [Section("eval", C.EvalConfig)], {}, _run_eval))
    app.command("frontier", help="Sweep methods and draw their quality-diversity frontier (docs/frontier.md).")(
        make_command("frontier", [Section("frontier", C.FrontierConfig)], {}, _run_frontier))

    @app.command("plugins", help="List plugins and what they register.")
    def plugins_command(all: bool = typer.Option(False, "--all", help="Also list every record's details.")) -> None:
        from alignkit.plugin_table import print_plugins

        print_plugins(registry, show_all=all)

    @app.command("validate", help="Check a YAML config file without running anything.")
    def validate_command(config: str = typer.Argument(..., help="YAML file with 'command:' (and 'objective:' "
                                                                "for train).")) -> None:
        try:
            data = C.load_yaml(config)
            command = data.get("command")
            if command not in ("prepare", "train", "decode", "eval"):
                raise UserError(f"{config} must say which command it configures: 'command: prepare|train|"
                                f"decode|eval'")
            args = [command] + ([str(data.get("objective", ""))] if command == "train" else [])
            if command == "train" and not data.get("objective"):
                raise UserError(f"{config} configures train but names no 'objective:'")
            if command == "train":
                registry.get("objective", args[1])
        except UserError as exc:
            raise _error(str(exc)) from None
        # Resolve exactly as the real command would, printing the result instead of running it.
        code = typer.main.get_command(app).main([*args, "--config", config, "--print-config"],
                                                prog_name="alignkit", standalone_mode=False)
        if code:  # the error was already printed in one line
            raise typer.Exit(code)
        print(f"ok: {config} is a valid config for 'alignkit {' '.join(args)}'", file=sys.stderr)

    for hook in plugins.command_hooks():
        hook(cli=app)
    return app


def main() -> None:
    try:
        app = build_app()
    except UserError as exc:  # e.g. two plugins registering the same name
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    app()


if __name__ == "__main__":
    main()
