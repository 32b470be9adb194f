"""The frontier's report: DIR/frontier.json (everything), DIR/frontier.md (tables), DIR/frontier.png (the plot).

frontier.json: {spec, metrics {quality, diversity: {name, higher_is_better}, source}, start, points [...],
methods [...], matched_quality {levels, shared, diversity {method: [...]}}}; each point is {method, params,
quality, quality_ci, diversity, diversity_ci, pareto, run, seconds, id}, a CI being [low, high] or null (exact).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alignkit.eval.frontier.analysis import matched_quality, pareto
from alignkit.eval.frontier.grid import START
from alignkit.eval.frontier.spec import Spec


def _ci(figure: dict[str, Any]) -> list[float] | None:
    if figure.get("ci_low") is None or figure.get("ci_high") is None:
        return None
    return [figure["ci_low"], figure["ci_high"]]


def _entry(doc: dict[str, Any]) -> dict[str, Any]:
    return {"method": doc["method"], "params": doc["params"],
            "quality": doc["quality"]["mean"], "quality_ci": _ci(doc["quality"]),
            "diversity": doc["diversity"]["mean"], "diversity_ci": _ci(doc["diversity"]),
            "run": doc["folder"], "model": doc.get("model_folder"), "seconds": doc.get("seconds"), "id": doc["id"]}


def build(spec: Spec, docs: list[dict[str, Any]]) -> dict[str, Any]:
    """frontier.json's document from the points' point.json documents (the start first, as grid.expand puts it)."""
    start = next(d for d in docs if d["method"] == START)
    rest = [d for d in docs if d["method"] != START]
    q, d = start["quality"], start["diversity"]
    metrics = {"quality": {"name": q["name"], "higher_is_better": q["higher_is_better"]},
               "diversity": {"name": d["name"], "higher_is_better": d["higher_is_better"]},
               "source": "exact" if spec.eval.exact else "sampled"}
    points = [_entry(doc) for doc in rest]
    # Pareto over the methods' points; the start is the reference they are drawn against, not a competitor.
    marks = pareto([(p["quality"], p["diversity"]) for p in points], q["higher_is_better"], d["higher_is_better"])
    for p, mark in zip(points, marks):
        p["pareto"] = mark
    matched = matched_quality({m.name: [(p["quality"], p["diversity"]) for p in points if p["method"] == m.name]
                               for m in spec.methods}, d["higher_is_better"])
    return {"spec": spec.path, "model": spec.model, "metrics": metrics, "start": _entry(start), "points": points,
            "methods": [{"name": m.name, "kind": m.kind, "record": m.record.name, "sweep": m.sweep}
                        for m in spec.methods],
            "matched_quality": matched}


def _value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _cell(value: float, ci: list[float] | None) -> str:
    return _num(value) + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _arrow(info: dict[str, Any]) -> str:
    return "↑" if info["higher_is_better"] else "↓"


def markdown(doc: dict[str, Any]) -> str:
    qi, di = doc["metrics"]["quality"], doc["metrics"]["diversity"]
    q, d = qi["name"], di["name"]
    source = doc["metrics"]["source"]
    how = ("exact, every response enumerated (toy world)" if source == "exact"
           else "sampled, mean over prompts with a 95 % bootstrap interval")
    intro = (f"Quality: `{q}` ({_arrow(qi)}); diversity: `{d}` ({_arrow(di)}); {how}. "
             f"{len(doc['points'])} points of {len(doc['methods'])} methods; ★ marks the Pareto-optimal ones "
             "(no other point at least as good on both and better on one).")
    start = (f"Start model `{doc['model']}`: {q} {_cell(doc['start']['quality'], doc['start']['quality_ci'])}, "
             f"{d} {_cell(doc['start']['diversity'], doc['start']['diversity_ci'])}.")
    lines = [f"# Quality–diversity frontier: `{doc['spec']}`", "", intro, "", "![frontier](frontier.png)", "",
             start]
    for m in doc["methods"]:
        knobs = list(m["sweep"])
        what = f"train {m['record']}" if m["kind"] == "train" else f"decode --{m['record']}"
        lines += ["", f"## {m['name']} ({what})", "",
                  "| " + " | ".join([*knobs, f"{q} {_arrow(qi)}", f"{d} {_arrow(di)}", "Pareto", "run"]) + " |",
                  "|" + "---|" * (len(knobs) + 4)]
        for p in (p for p in doc["points"] if p["method"] == m["name"]):
            lines.append("| " + " | ".join([*(_value(p["params"][k]) for k in knobs),
                                            _cell(p["quality"], p["quality_ci"]),
                                            _cell(p["diversity"], p["diversity_ci"]),
                                            "★" if p["pareto"] else "",
                                            f"`{p['run']}`" + (f", model `{p['model']}`" if p.get("model") else "")])
                         + " |")
    mq = doc["matched_quality"]
    names = list(mq["diversity"])
    out = [n for n in names if n not in mq["methods"]]
    scope = (" (the levels lie inside every method's range)." if mq["shared"] else
             ", inside the range the most methods share; " + ", ".join(
                 f"{n} ({q} {mq['ranges'][n][0]:.3f} to {mq['ranges'][n][1]:.3f})" for n in out)
             + (" does" if len(out) == 1 else " do") + " not span it (— where a method does not reach).")
    lines += ["", "## Matched quality", "",
              f"Each method's {d} at shared levels of {q}, interpolated linearly along its points sorted by {q}"
              + scope, "", f"| {q} | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    # Levels close together (a narrow shared range) get a fourth decimal, so two rows never read the same.
    digits = 4 if len(mq["levels"]) > 1 and mq["levels"][-1] - mq["levels"][0] < 0.02 else 3
    for i, level in enumerate(mq["levels"]):
        lines.append(f"| {level:.{digits}f} | " + " | ".join(_num(mq["diversity"][n][i]) for n in names) + " |")
    return "\n".join(lines) + "\n"


def write(doc: dict[str, Any], out: Path) -> list[Path]:
    from alignkit.eval.frontier.plot import plot

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "frontier.json", out / "frontier.md", out / "frontier.png"]
    paths[0].write_text(json.dumps(doc, indent=2, default=str) + "\n")
    paths[1].write_text(markdown(doc))
    plot(doc, paths[2])
    return paths
