"""PNG plots for the report (matplotlib, Agg backend, imported only here).

- quality_vs_diversity.png: one labelled point per input file, x = a diversity metric (distinct-2), y = a quality
  metric (reward, else pass@1), error bars = the bootstrap CIs. Without a quality metric: distinct-2 against
  mean words per sample.
- dist-<metric>.png: the per-prompt values of one metric, one box per file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

QUALITY_ORDER = ("reward", "pass@1", "pass@n")
DIVERSITY_AXIS = "distinct-2"
LENGTH_AXIS = "mean-words"


def _summary(file: dict, name: str) -> dict | None:
    return file["metrics"].get(name)


def _axes_for(doc: dict) -> tuple[str, str, str | None]:
    """(x metric, y metric, note or None): quality against diversity when a quality metric exists."""
    for q in QUALITY_ORDER:
        if q in doc["metrics"] and any(_summary(f, q) for f in doc["files"]):
            return DIVERSITY_AXIS, q, None
    return LENGTH_AXIS, DIVERSITY_AXIS, ("no quality metric (give --reward): the trade-off plot shows "
                                         f"{DIVERSITY_AXIS} against {LENGTH_AXIS} instead")


def _arrow(doc: dict, name: str) -> str:
    info = doc["metrics"].get(name, {})
    return f"{name} ({'higher' if info.get('higher_is_better', True) else 'lower'} is better)"


def make_plots(doc: dict[str, Any], folder: Path) -> tuple[list[str], list[str]]:
    """Write the PNGs; returns (file names relative to the report folder, notes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written, notes = [], []
    x_name, y_name, note = _axes_for(doc)
    if note:
        notes.append(note)
    points = [(f["label"], _summary(f, x_name), _summary(f, y_name)) for f in doc["files"]]
    points = [(label, x, y) for label, x, y in points if x and y]
    if points:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for label, x, y in points:
            xerr = [[x["mean"] - x["ci_low"]], [x["ci_high"] - x["mean"]]]
            yerr = [[y["mean"] - y["ci_low"]], [y["ci_high"] - y["mean"]]]
            ax.errorbar(x["mean"], y["mean"], xerr=xerr, yerr=yerr, fmt="o", capsize=4, label=label)
            ax.annotate(label, (x["mean"], y["mean"]), textcoords="offset points", xytext=(6, 6))
        ax.set_xlabel(_arrow(doc, x_name))
        ax.set_ylabel(_arrow(doc, y_name))
        ax.set_title(f"{y_name} vs {x_name} (mean over prompts, 95% bootstrap CI)")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(folder / "quality_vs_diversity.png", dpi=100)
        plt.close(fig)
        written.append(f"{folder.name}/quality_vs_diversity.png")
    else:
        notes.append(f"no trade-off plot: no file has both {x_name} and {y_name}")

    for name in doc["metrics"]:
        series = [[p["metrics"][name] for p in f["per_prompt"] if p["metrics"].get(name) is not None]
                  for f in doc["files"]]
        if not any(series):
            continue
        labels = [f["label"] for f, s in zip(doc["files"], series) if s]
        fig, ax = plt.subplots(figsize=(max(4, 1.5 * len(labels) + 2), 4))
        ax.boxplot([s for s in series if s])
        ax.set_xticks(range(1, len(labels) + 1), labels)
        ax.set_ylabel(_arrow(doc, name))
        ax.set_title(f"{name} per prompt")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fname = "dist-" + name.replace("@", "_at_") + ".png"
        fig.savefig(folder / fname, dpi=100)
        plt.close(fig)
        written.append(f"{folder.name}/{fname}")
    return written, notes
