"""The `alignkit` command line: prepare / train / decode / eval / plugins / validate.

Thin by design: parse flags, resolve the config, look records up in the registry, call the engine. The surface
follows the registry: one `train` subcommand per objective (flags from its options dataclass), a `--<name>`
switch on `train` per transform and on `decode` per decoder, each with its own `--<name>-<option>` flags (the
machinery is alignkit.commands). Importing this module must not import torch or transformers
(tests/cli/test_light_import.py checks), so engines are imported inside commands.
"""
from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Callable
from typing import Any

import typer

from alignkit import config as C
from alignkit import plugins
from alignkit.commands import Resolved, Section, error, make_command
from alignkit.errors import UserError, did_you_mean
from alignkit.registry import NoOptions, Registry


class AlignkitGroup(typer.core.TyperGroup):
    """A Typer group whose unknown subcommand error suggests the nearest name."""

    def resolve_command(self, ctx, args):  # type: ignore[override]
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            ctx.fail(f"unknown command '{name}'{did_you_mean(name, self.list_commands(ctx))} (see --help)")
        return super().resolve_command(ctx, args)


# ----------------------------------------------------------------------------------------------------------
# Runners: each engine is imported only when its command runs.


def _runner(module: str) -> Callable[..., Any]:
    """The `run` of a command's module, imported only when the command runs (torch stays out of --help)."""
    return importlib.import_module(module).run


def _run_prepare(r: Resolved) -> None:
    _runner("alignkit.data.save")(r.sections["prepare"])


def _train_runner(objective_name: str) -> Callable[[Resolved], None]:
    def run(r: Resolved) -> None:
        registry = plugins.registry()
        objective = registry.get("objective", objective_name)
        transforms = [(registry.get("transform", name), r.sections.get(name, NoOptions()))
                      for name, on in r.enabled.items() if on]
        _runner("alignkit.engine.train")(
            r.sections["train"], objective, r.sections["objective"], transforms, r.flat)
    return run


def _decode_run(r: Resolved) -> None:
    registry = plugins.registry()
    chosen = [name for name, on in r.enabled.items() if on]
    if len(chosen) > 1:
        raise UserError(f"choose one decoder, not {' and '.join('--' + c for c in chosen)}")
    decoder = registry.get("decoder", chosen[0] if chosen else "sample")
    options = r.sections.get(decoder.name, NoOptions())
    _runner("alignkit.engine.decode")(r.sections["decode"], decoder, options)


def _run_eval(r: Resolved) -> None:
    _runner("alignkit.eval.run")(r.sections["eval"])


def _run_frontier(r: Resolved) -> None:
    _runner("alignkit.eval.frontier")(r.sections["frontier"])


# ----------------------------------------------------------------------------------------------------------
# The app, built from the registry.


def _options_section(key: str, cls: type, switch: str | None = None) -> list[Section]:
    return [] if cls is NoOptions or not dataclasses.fields(cls) else [Section(key, cls, switch=switch)]


def _train_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """The defaults the model declares (its alignkit-model.json), for the model and mode this run uses."""
    return C.model_defaults(values.get("model", C.TrainConfig.model), bool(values.get("online", False)))


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
        sections = [Section("train", C.TrainConfig, defaults=_train_defaults),
                    *_options_section("objective", objective.options)]
        for t in usable:
            sections += _options_section(t.name, t.options, switch=t.name)
        switches = {t.name: t.help for t in usable}
        help = objective.help + (f" [{objective.paper}]" if objective.paper else "")
        train.command(objective.name, help=help)(
            make_command(f"train {objective.name}", sections, switches, _train_runner(objective.name)))
    app.add_typer(train, name="train")

    decoders = [d for d in registry.all("decoder") if d.name != "sample"]
    sections = [Section("decode", C.DecodeConfig)]
    if ("decoder", "sample") in registry:
        sections += _options_section("sample", registry.get("decoder", "sample").options)
    for d in decoders:  # each decoder's options are --<decoder>-<option>, accepted only with its switch
        sections += _options_section(d.name, d.options, switch=d.name)
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
            raise error(str(exc)) from None
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
