"""`alignkit frontier SPEC.yaml`: sweep methods, measure quality and diversity at every point, draw the frontier.

    alignkit frontier examples/frontier/toy.yaml --output frontier/ --jobs 2

spec.py reads and checks the spec (keys from the registry), grid.py expands the sweeps to points with an identity,
commands.py says which alignkit commands compute a point, runner.py runs them in subprocesses (reusing finished
points), analysis.py finds the Pareto-optimal points and matches quality, report.py and plot.py write
frontier.json, frontier.md and frontier.png. docs/frontier.md is the user's page.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any


def run(cfg: Any) -> dict[str, Any] | None:
    """Run a FrontierConfig: check the spec, compute or reuse every point, write the report."""
    from alignkit import plugins
    from alignkit.eval.frontier import grid, report, runner, spec

    checked = spec.load(cfg.spec, plugins.registry())
    points = grid.expand(checked)
    out = Path(cfg.output)
    if cfg.dry_run:
        runner.dry_run(points, out)
        return None
    docs = runner.run_points(points, out, cfg.jobs)
    doc = report.build(checked, docs)
    paths = report.write(doc, out)
    print("wrote " + ", ".join(str(p) for p in paths))
    return doc
