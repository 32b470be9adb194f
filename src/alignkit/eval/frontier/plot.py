"""frontier.png: quality (y) against diversity (x), one line per method in sweep order, the Pareto-optimal points
ringed, the starting model a black star. matplotlib (Agg) is imported here only."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def _label(info: dict[str, Any]) -> str:
    return f"{info['name']} ({'higher' if info['higher_is_better'] else 'lower'} is better)"


def _err(p: dict[str, Any], axis: str) -> list[list[float]] | None:
    ci = p[f"{axis}_ci"]
    return None if ci is None else [[p[axis] - ci[0]], [ci[1] - p[axis]]]


def _tag(params: dict[str, Any]) -> str:
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in params.values())


def plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for m in doc["methods"]:
        pts = [p for p in doc["points"] if p["method"] == m["name"]]  # sweep order, as the grid made them
        knobs = ",".join(m["sweep"])
        line, = ax.plot([p["diversity"] for p in pts], [p["quality"] for p in pts], "-o", ms=5, lw=1.3,
                        label=f"{m['name']} ({knobs})")
        for p in pts:
            if p["quality_ci"] or p["diversity_ci"]:
                ax.errorbar(p["diversity"], p["quality"], xerr=_err(p, "diversity"), yerr=_err(p, "quality"),
                            fmt="none", ecolor=line.get_color(), alpha=0.5, capsize=2)
            ax.annotate(_tag(p["params"]), (p["diversity"], p["quality"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=7, color=line.get_color())
    best = [p for p in doc["points"] if p["pareto"]]
    if best:
        ax.scatter([p["diversity"] for p in best], [p["quality"] for p in best], s=170, facecolors="none",
                   edgecolors="black", linewidths=1.2, label="Pareto-optimal", zorder=3)
    s = doc["start"]
    ax.scatter([s["diversity"]], [s["quality"]], marker="*", s=260, color="black", zorder=4,
               label=f"start ({doc['model']})")
    ax.set_xlabel(_label(doc["metrics"]["diversity"]))
    ax.set_ylabel(_label(doc["metrics"]["quality"]))
    source = "exact" if doc["metrics"]["source"] == "exact" else "sampled, 95% bootstrap CI"
    ax.set_title(f"Quality against diversity ({source}); labels are the sweep values")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
