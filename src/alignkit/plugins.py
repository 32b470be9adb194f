"""Loading plugins into one Registry, resolving resource names, and calling the lifecycle hooks.

- Built-ins (`BUILTIN_PLUGINS`) always load; a failure there is a bug and raises.
- Third-party plugins come from the `alignkit` entry-point group. Everything a plugin does at loading happens
  inside its isolation: importing it (a `SystemExit` included), registering it with pluggy (its hook names are
  checked: a misspelt hook is a failure that names the nearest hook), calling its register hooks, and validating
  every record and flag it registers (`Registry.check`). A plugin that fails any of it prints one warning naming it
  and is skipped whole; `ALIGNKIT_STRICT_PLUGINS=1` makes that one `error:` line instead.
- `ALIGNKIT_LOAD_PLUGINS=a,b` loads only the named entry points (empty: none of them).
"""
from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import pluggy

from alignkit import hookspecs
from alignkit.errors import UserError, did_you_mean
from alignkit.registry import KINDS, Registry

BUILTIN_PLUGINS = (
    "alignkit.builtins.objectives",
    "alignkit.builtins.decoders",
    "alignkit.builtins.metrics",
    "alignkit.builtins.rewards",
    "alignkit.builtins.formats",
    "alignkit.builtins.resources",
    "alignkit.builtins.loggers",
    "alignkit.toy.plugin",
)
ENTRY_POINT_GROUP = "alignkit"
HOOK_NAMES = tuple(n for n in dir(hookspecs) if not n.startswith("_") and callable(getattr(hookspecs, n))
                   and hasattr(getattr(hookspecs, n), "alignkit_spec"))

_extra_plugins: list[tuple[str, Any]] = []  # registered in-process (tests, notebooks)
_cached: tuple[pluggy.PluginManager, Registry] | None = None


class PluginFailure(Exception):
    """A third-party plugin could not be loaded; the message says why in one line."""


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _strict() -> bool:
    return os.environ.get("ALIGNKIT_STRICT_PLUGINS", "") not in ("", "0", "false")


def _selected_entry_points() -> list[Any]:
    eps = list(entry_points(group=ENTRY_POINT_GROUP))
    allow = os.environ.get("ALIGNKIT_LOAD_PLUGINS")
    if allow is not None:
        wanted = {n.strip() for n in allow.split(",") if n.strip()}
        eps = [ep for ep in eps if ep.name in wanted]
    return sorted(eps, key=lambda ep: ep.name)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"SystemExit({exc.code!r}) while loading"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _unknown_hooks(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    """Hook implementations whose name is no hook of the contract (pluggy would only notice at check_pending)."""
    found = []
    for attr in dir(plugin):
        try:
            opts = pm.parse_hookimpl_opts(plugin, attr)
        except Exception:
            opts = None
        if opts is not None and attr not in HOOK_NAMES:
            found.append(attr)
    return found


def _register(pm: pluggy.PluginManager, registry: Registry, name: str, plugin: Any) -> None:
    """Register one plugin with pluggy, call its register hooks through pluggy and add its records; raise on any
    problem, leaving neither pluggy nor the registry holding a part of it."""
    unknown = _unknown_hooks(pm, plugin)
    if unknown:
        raise PluginFailure(f"it implements '{unknown[0]}', which is no alignkit hook"
                            f"{did_you_mean(unknown[0], HOOK_NAMES)}")
    pm.register(plugin, name=name)
    try:
        others = [p for p in pm.get_plugins() if p is not plugin]
        records: list[Any] = []
        for kind in KINDS.values():
            pm.subset_hook_caller(kind.hook, remove_plugins=others)(register=records.append)
        for record in records:  # validated one by one, so a plugin's records cannot clash with each other
            registry.add(record, name)
    except BaseException:
        pm.unregister(plugin)
        for kind in KINDS:
            registry.drop_plugin(kind, name)
        raise
    registry.plugins.append(name)


def _load_third_party(pm: pluggy.PluginManager, registry: Registry, name: str, load: Callable[[], Any]) -> None:
    try:
        _register(pm, registry, name, load())
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - a third-party plugin's bug (or sys.exit) must not end the CLI
        reason = str(exc) if isinstance(exc, (PluginFailure, UserError)) else _one_line(exc)
        if _strict():
            raise UserError(f"plugin '{name}' failed to load: {reason}") from None
        _warn(f"plugin '{name}' failed to load and was skipped: {reason}")
        registry.failures.append((name, reason))


def load(refresh: bool = False) -> tuple[pluggy.PluginManager, Registry]:
    """The process-wide plugin manager and registry (built once, rebuilt with refresh=True)."""
    global _cached
    if _cached is not None and not refresh:
        return _cached
    pm = pluggy.PluginManager("alignkit")
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    for module_name in BUILTIN_PLUGINS:
        _register(pm, registry, module_name, importlib.import_module(module_name))
    for ep in _selected_entry_points():
        _load_third_party(pm, registry, ep.name, ep.load)
    for name, plugin in _extra_plugins:
        _load_third_party(pm, registry, name, lambda plugin=plugin: plugin)
    pm.check_pending()  # every registered implementation matches a hook of the contract
    _cached = (pm, registry)
    return _cached


def registry() -> Registry:
    return load()[1]


def register_plugin(plugin: Any, name: str) -> None:
    """Add a plugin object in-process (as an entry point would) and rebuild the registry."""
    _extra_plugins.append((name, plugin))
    load(refresh=True)


def unregister_plugin(name: str) -> None:
    _extra_plugins[:] = [(n, p) for n, p in _extra_plugins if n != name]
    load(refresh=True)


def command_hooks() -> list[Callable[..., Any]]:
    """register_commands implementations of every loaded plugin."""
    pm, _ = load()
    return [impl.function for impl in pm.hook.register_commands.get_hookimpls()]


# ----------------------------------------------------------------------------------------------------------
# Resources: the one place where a name such as toy:instruct (or a *.gguf file) becomes a path


def resolve_resource(spec: str, kind: str) -> str:
    """The folder or file `spec` stands for as a `kind` ('model' or 'data'); any other spec is returned as is.

    A registered name first, then the families of specs (`matches`) by priority. A spec whose prefix (`toy:`) is
    the namespace of registered names, but which is none of them, is an error that suggests the nearest.
    """
    reg = registry()
    resources = reg.all("resource")
    exact = {r.name: r for r in resources if r.matches is None}
    if spec in exact:
        record = exact[spec]
        if record.kind != kind:
            raise UserError(f"'{spec}' is a {record.kind} resource, not a {kind}: {record.help}")
        return str(record.resolve(spec))
    for record in sorted((r for r in resources if r.matches is not None and r.kind == kind),
                         key=lambda r: -r.priority):
        if record.matches(spec):
            return str(record.resolve(spec))
    namespace = spec.split(":", 1)[0] + ":" if ":" in spec else None
    if namespace and any(n.startswith(namespace) for n in exact):
        names = sorted(n for n, r in exact.items() if n.startswith(namespace) and r.kind == kind)
        raise UserError(f"unknown {kind} '{spec}'{did_you_mean(spec, names)} (known: {', '.join(names)})")
    return spec


def load_reward(spec: str) -> Callable[[list[str], list[str]], list[float]]:
    """The reward function for a SPEC ('toy', 'pkg.module:function', 'path/to/file.py:function', a model folder):
    the registered reward source of highest priority whose `matches` accepts it loads it."""
    sources = sorted(registry().all("reward"), key=lambda s: -s.priority)
    for source in sources:
        if source.matches(spec):
            return source.load(spec)
    raise UserError(f"no reward source understands '{spec}'; use toy, module:function, or a reward model folder "
                    f"(sources: {', '.join(s.name for s in sources)})")


def world_of(spec: str) -> Any:
    """The registered World a model belongs to (its alignkit-model.json names it), or None."""
    from alignkit.model_info import model_info

    name = model_info(spec).get("world")
    return registry().get("world", name) if name else None


def is_named_resource(spec: str) -> bool:
    """Whether `spec` is a registered name (toy:instruct), not a family member or a plain path."""
    return any(r.name == spec and r.matches is None for r in registry().all("resource"))


# ----------------------------------------------------------------------------------------------------------
# Lifecycle hooks


def notify(hook: str, **kwargs: Any) -> None:
    """Call every implementation of a lifecycle hook, in load order (built-ins first). A built-in's failure raises;
    a third-party plugin's failure is one warning naming it (once per hook), so a broken logger never ends a run."""
    pm, _ = load()
    for impl in getattr(pm.hook, hook).get_hookimpls():
        try:
            impl.function(**{k: kwargs[k] for k in impl.argnames})
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            if impl.plugin_name in BUILTIN_PLUGINS or _strict():
                raise
            key = (impl.plugin_name, hook)
            if key not in _warned:
                _warned.add(key)
                _warn(f"plugin '{impl.plugin_name}' failed in {hook} and is skipped there: {_one_line(exc)}")


_warned: set[tuple[str, str]] = set()
