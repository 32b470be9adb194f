"""The plugin contract. Each hook receives `register`, a callback taking one record from `alignkit.registry`.

A plugin is a module (or object) with functions decorated by `alignkit.hookimpl`; built-ins load from an
explicit list, third-party plugins from the `alignkit` entry-point group. Plugin modules must not import torch
or transformers at top level, so that `alignkit --help` stays fast: import them inside the registered functions.
"""
import pluggy

hookspec = pluggy.HookspecMarker("alignkit")
hookimpl = pluggy.HookimplMarker("alignkit")


@hookspec
def register_objectives(register):
    """Register training objectives: `register(registry.Objective(...))`."""


@hookspec
def register_transforms(register):
    """Register pair / token-mask transforms (e.g. POET): `register(registry.Transform(...))`."""


@hookspec
def register_decoders(register):
    """Register next-token distribution strategies: `register(registry.Decoder(...))`."""


@hookspec
def register_metrics(register):
    """Register evaluation metrics: `register(registry.Metric(...))`."""


@hookspec
def register_rewards(register):
    """Register reward sources for online training and eval: `register(registry.RewardSource(...))`."""


@hookspec
def register_formats(register):
    """Register data-set formats that `prepare` detects and converts: `register(registry.Format(...))`."""


@hookspec
def register_commands(cli):
    """Add subcommands to the Typer app `cli` (e.g. `@cli.command()`)."""
