"""The plugin contract: the hooks a plugin may implement (docs/plugins.md walks through each).

Registration hooks receive `register`, a callback taking one record from `alignkit.registry` (the table of kinds
is `alignkit.registry.KINDS`). Lifecycle hooks receive a `alignkit.registry.Run` and are called by the training
loop on the main process. A plugin is a module (or object) with functions decorated by `alignkit.hookimpl`;
built-ins load from an explicit list, third-party plugins from the `alignkit` entry-point group. Plugin modules
must not import torch or transformers at top level, so that `alignkit --help` stays fast.
"""
import pluggy

hookspec = pluggy.HookspecMarker("alignkit")
hookimpl = pluggy.HookimplMarker("alignkit")


# ---- registration: one record per registered thing


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
def register_resources(register):
    """Register names that stand for models or data sets (`toy:instruct`), or families of specs that need a step
    before they can be opened (`*.gguf`): `register(registry.Resource(...))`."""


@hookspec
def register_worlds(register):
    """Register enumerable worlds whose exact evaluation `eval --exact` / `decode --exact` run:
    `register(registry.World(...))`."""


@hookspec
def register_commands(cli):
    """Add subcommands to the Typer app `cli` (e.g. `@cli.command()`)."""


# ---- the training lifecycle: called on the main process, in this order


@hookspec
def train_started(run):
    """A run is about to take its first step (or its first step after a resume); `run.policy` is the start."""


@hookspec
def step_logged(run, record):
    """One line was written to metrics.jsonl: `record` is that dict (TRL's metric names; `step` included)."""


@hookspec
def train_finished(run):
    """The run saved its final model to `run.output`; `run.policy` is the trained model."""
