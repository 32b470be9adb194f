"""Writing the evaluation report: report.json (everything), report.md (tables + plots), a terminal table."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def _cell(summary: dict | None) -> str:
    if not summary:
        return "—"
    return f"{summary['mean']:.4g} [{summary['ci_low']:.4g}, {summary['ci_high']:.4g}]"


def _arrow(info: dict) -> str:
    return "↑" if info["higher_is_better"] else "↓"


def _rows(doc: dict) -> list[list[str]]:
    """One row per metric: name, kind, direction, then one 'mean [CI]' cell per file."""
    return [[name, info["kind"], _arrow(info), *(_cell(f["metrics"].get(name)) for f in doc["files"])]
            for name, info in doc["metrics"].items()]


def markdown(doc: dict[str, Any]) -> str:
    files = doc["files"]
    lines = ["# alignkit eval report"]
    s = doc["settings"]
    if files:  # `eval --exact --model M` alone has no generations: no input or metric table
        lines += ["", f"Mean over prompts with a {int(s['ci_level'] * 100)} % bootstrap interval over prompts "
                  f"({s['bootstrap']} resamples, seed {s['seed']}). Reward: {s['reward'] or 'none'}; "
                  f"embedder: {s['embedder'] or 'none'}; pass threshold: {s['pass_threshold']}.", ""]
        lines += ["## Inputs", "", "| file | path | lines | malformed | evaluated | prompts | samples |",
                  "|---|---|---|---|---|---|---|"]
        for f in files:
            c = f["counts"]
            lines.append(f"| {f['label']} | `{f['path']}` | {c['lines']} | {c['malformed']} | {c['evaluated']} | "
                         f"{c['prompts']} | {c['samples']} |")
        lines += ["", "## Metrics", "", "| metric | kind | better | " + " | ".join(f["label"] for f in files) + " |",
                  "|---|---|---|" + "---|" * len(files)]
        lines += ["| " + " | ".join(row) + " |" for row in _rows(doc)]
    if "exact" in doc:
        e = doc["exact"]
        lines += ["", f"## Exact toy evaluation of `{e['model']}` (reference `{e['ref_model']}`)", "",
                  "| expected reward | entropy | KL | expected length (words) | outside mass |",
                  "|---|---|---|---|---|",
                  "| " + " | ".join("—" if e["mean"].get(k) is None else f"{e['mean'][k]:.4g}"
                                   for k in ("expected_reward", "entropy", "kl", "expected_length",
                                             "outside_mass")) + " |"]
    if doc.get("plots"):
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in doc["plots"]]
    if doc["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in doc["notes"]]
    return "\n".join(lines) + "\n"


def print_table(doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if doc["files"]:  # `eval --exact --model M` alone evaluates no generations: no table to show
        table = Table(title="alignkit eval: mean over prompts [95% bootstrap CI]")
        for col in ("metric", "kind", "better", *(f["label"] for f in doc["files"])):
            table.add_column(col)
        for row in _rows(doc):
            table.add_row(*row)
        console.print(table)
    for f in doc["files"]:
        c = f["counts"]
        console.print(f"{f['label']}: evaluated {c['evaluated']} of {c['lines']} lines "
                      f"({c['malformed']} malformed), {c['prompts']} prompts, {c['samples']} samples")
    if "exact" in doc:
        console.print("exact: " + ", ".join(f"{k}={v:.4g}" for k, v in doc["exact"]["mean"].items()
                                            if v is not None))
    for note in doc["notes"]:
        console.print(f"note: {note}", markup=False)


def write(doc: dict[str, Any], folder: Path) -> None:
    """report.json and report.md (each written beside and renamed into place), the plots, the terminal table. The
    figures are worth more than their pictures: a plot that fails is a note in the report, never a lost report."""
    folder.mkdir(parents=True, exist_ok=True)
    plots, notes = [], []
    if doc["files"]:
        try:
            from alignkit.eval.plots import make_plots

            plots, notes = make_plots(doc, folder / "plots")
        except Exception as exc:  # matplotlib missing or broken, a font cache that cannot be written, ...
            notes = [f"no plots: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")]
    doc["plots"] = plots
    doc["notes"] += notes
    _write_atomic(folder / "report.json", json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    _write_atomic(folder / "report.md", markdown(doc))
    print_table(doc)
    print(f"wrote {folder / 'report.json'}, {folder / 'report.md'} and {len(plots)} plot(s) in {folder / 'plots'}")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
