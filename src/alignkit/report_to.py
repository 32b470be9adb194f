"""`--report-to`: which logging backends a run writes to beside metrics.jsonl (no torch; the contract layer).

The built-in plugin alignkit.builtins.loggers writes to them through the training lifecycle hooks.
"""
from __future__ import annotations

from alignkit.errors import UserError, did_you_mean

# --report-to backends and the package each needs.
REPORT_BACKENDS = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}


def report_targets(values: list[str] | str | None) -> list[str]:
    """The backends `--report-to` names, spelt as transformers' `report_to`: a list or comma-separated names,
    `none` (nothing but metrics.jsonl) or `all` (every backend whose package is installed). A named backend whose
    package is missing is an error that says what to install."""
    import importlib.util

    items = [values] if isinstance(values, str) else list(values or [])
    names = [n.strip() for item in items for n in str(item).split(",") if n.strip()]
    if "all" in names:
        return [b for b, package in REPORT_BACKENDS.items() if importlib.util.find_spec(package) is not None]
    targets: list[str] = []
    for name in names:
        if name == "none":
            continue
        if name not in REPORT_BACKENDS:
            raise UserError(f"unknown --report-to '{name}'{did_you_mean(name, [*REPORT_BACKENDS, 'all', 'none'])} "
                            f"(choose from {', '.join(REPORT_BACKENDS)}, all, none)")
        if importlib.util.find_spec(REPORT_BACKENDS[name]) is None:
            raise UserError(f"--report-to {name} needs the {REPORT_BACKENDS[name]} package: pip install "
                            f"{REPORT_BACKENDS[name]}")
        if name not in targets:
            targets.append(name)
    return targets
