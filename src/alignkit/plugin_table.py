"""`alignkit plugins`: what is loaded and what each plugin registers, as a rich table."""
from __future__ import annotations

import dataclasses

from rich.console import Console
from rich.table import Table

from alignkit.registry import KINDS, NoOptions, Registry


def _options(cls: type) -> str:
    if cls is NoOptions:
        return ""
    return ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls))


def _details(record) -> str:
    parts = []
    if hasattr(record, "modes"):
        parts.append("modes: " + ",".join(record.modes))
        opts = record.options()
        caps = [c for c, on in (("needs_reference", record.requires_reference(opts)),
                                ("length_normalized", record.is_length_normalized(opts))) if on]
        parts.append("capabilities (defaults): " + (",".join(caps) or "none"))
    if getattr(record, "kind", None) in ("quality", "diversity"):
        parts.append(f"{record.kind}, {'higher' if record.higher_is_better else 'lower'} is better")
    if record.kind_name == "transform":
        parts.append("composes with: every pairwise objective")
    if record.kind_name == "resource":
        parts.append(f"stands for a {record.kind}" + (" (a family of specs)" if record.matches else ""))
    if getattr(record, "options", NoOptions) is not NoOptions and _options(record.options):
        parts.append("options: " + _options(record.options))
    if getattr(record, "paper", ""):
        parts.append("paper: " + record.paper)
    return "; ".join(parts)


def print_plugins(registry: Registry, show_all: bool = False) -> None:
    console = Console()
    table = Table(title="alignkit plugins")
    table.add_column("plugin")
    table.add_column("kind")
    table.add_column("name")
    table.add_column("details" if show_all else "summary", overflow="fold")
    for plugin in registry.plugins:
        records = [r for kind in KINDS for r in registry.all(kind) if r.plugin == plugin]
        if not records:
            table.add_row(plugin, "-", "-", "(registers nothing yet)")
        for r in records:
            table.add_row(plugin, r.kind_name, r.name, _details(r) if show_all else r.help.split(". ")[0])
    console.print(table)
    for name, reason in registry.failures:
        console.print(f"[yellow]skipped plugin '{name}': {reason}[/yellow]")
