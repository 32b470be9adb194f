"""Loading plugins into one Registry: built-ins from an explicit list, third parties from entry points.

- Built-ins (`BUILTIN_PLUGINS`) always load; a failure there is a bug and raises.
- Third-party plugins come from the `alignkit` entry-point group. One that fails to import or register prints one
  warning naming it and is skipped; `ALIGNKIT_STRICT_PLUGINS=1` makes that fatal.
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
from alignkit.registry import Registry

BUILTIN_PLUGINS = (
    "alignkit.builtins.objectives",
    "alignkit.builtins.decoders",
    "alignkit.builtins.metrics",
    "alignkit.builtins.rewards",
    "alignkit.builtins.formats",
    "alignkit.toy.plugin",
)
ENTRY_POINT_GROUP = "alignkit"

# hook name -> record kind it registers
_REGISTER_HOOKS = {
    "register_objectives": "objective",
    "register_transforms": "transform",
    "register_decoders": "decoder",
    "register_metrics": "metric",
    "register_rewards": "reward",
    "register_formats": "format",
}

_extra_plugins: list[tuple[str, Any]] = []  # registered in-process (tests, notebooks)
_cached: tuple[pluggy.PluginManager, Registry] | None = None


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


def _fail(name: str, exc: BaseException) -> None:
    if _strict():
        raise RuntimeError(f"plugin '{name}' failed to load: {exc}") from exc
    _warn(f"plugin '{name}' failed to load and was skipped: {type(exc).__name__}: {exc}")


def _collect(pm: pluggy.PluginManager, registry: Registry, name: str, plugin: Any, third_party: bool) -> None:
    """Call one plugin's register hooks into a scratch registry, then merge: a failure leaves no half-plugin."""
    records: list[Any] = []
    try:
        for hook in _REGISTER_HOOKS:
            impl = getattr(plugin, hook, None)
            if impl is not None and callable(impl):
                impl(register=records.append)
    except Exception as exc:  # a third-party plugin's bug must not take the CLI down
        if not third_party:
            raise
        _fail(name, exc)
        registry.failures.append((name, f"{type(exc).__name__}: {exc}"))
        pm.unregister(plugin)
        return
    registry.plugins.append(name)
    for record in records:
        registry.add(record, name)


def load(refresh: bool = False) -> tuple[pluggy.PluginManager, Registry]:
    """The process-wide plugin manager and registry (built once, rebuilt with refresh=True)."""
    global _cached
    if _cached is not None and not refresh:
        return _cached
    pm = pluggy.PluginManager("alignkit")
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    for module_name in BUILTIN_PLUGINS:
        module = importlib.import_module(module_name)
        pm.register(module, name=module_name)
        _collect(pm, registry, module_name, module, third_party=False)
    for ep in _selected_entry_points():
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:
            _fail(ep.name, exc)
            registry.failures.append((ep.name, f"{type(exc).__name__}: {exc}"))
            continue
        _collect(pm, registry, ep.name, plugin, third_party=True)
    for name, plugin in _extra_plugins:
        pm.register(plugin, name=name)
        _collect(pm, registry, name, plugin, third_party=True)
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
