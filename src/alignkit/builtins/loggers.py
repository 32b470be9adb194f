"""Logging backends beside metrics.jsonl: `alignkit train … --report-to tensorboard` (or wandb, trackio).

    alignkit train dpo --report-to tensorboard --output runs/dpo && tensorboard --logdir runs/

A built-in plugin on the training lifecycle hooks (alignkit.hookspecs): `train_started` opens one writer per
backend that `TrainConfig.report_to` names (resolved and checked in alignkit.config before anything loads),
`step_logged` sends it every line the loop writes to metrics.jsonl, `train_finished` closes it. Tags are the
names TRL's Trainer gives the same numbers (transformers' `rewrite_logs`): a metrics.jsonl key `loss` is
`train/loss`, `rewards/chosen` is `train/rewards/chosen`, held-out `eval/loss` stays `eval/loss`; the step is
metrics.jsonl's `step`. Where each backend writes:

- tensorboard: `<output>/runs/` (or $TENSORBOARD_LOGGING_DIR, as transformers reads it). A resumed run purges the
  events after its checkpoint, as it rewrites those lines of metrics.jsonl, so the two always agree.
- wandb: a run in project $WANDB_PROJECT (default `alignkit`) named after the output folder, its local files in
  `<output>/wandb/`; `WANDB_MODE=offline` keeps it on disk.
- trackio: a run in project $TRACKIO_PROJECT (default `alignkit`) named after the output folder.

The packages are imported only when a run reports to them, so none of them is a dependency of alignkit.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from alignkit import hookimpl
from alignkit.config import dump_yaml

STATE_KEY = "loggers"


def tags(record: dict[str, Any]) -> dict[str, float]:
    """metrics.jsonl's line as TRL names it in TensorBoard / W&B: `train/<key>`, `eval/` keys as they are; the step
    is the x axis, not a scalar; non-numbers are dropped."""
    out = {}
    for key, value in record.items():
        if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out[key if key.startswith(("train/", "eval/")) else f"train/{key}"] = float(value)
    return out


def last_logged_step(output: Path) -> int:
    """The step of metrics.jsonl's last line (the loop has already cut a resumed run's file at its checkpoint)."""
    path = Path(output) / "metrics.jsonl"
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()] if path.is_file() else []
    return int(json.loads(lines[-1])["step"]) if lines else 0


class TensorBoardLogger:
    def __init__(self, run: Any) -> None:
        from torch.utils.tensorboard import SummaryWriter

        folder = os.environ.get("TENSORBOARD_LOGGING_DIR") or str(Path(run.output) / "runs")
        # purge_step: TensorBoard hides this folder's earlier events from that step on, so a fresh run into an old
        # output, or a resumed one, shows exactly the steps metrics.jsonl holds.
        self.writer = SummaryWriter(log_dir=os.path.expanduser(folder),
                                    purge_step=last_logged_step(run.output) + 1)
        self.writer.add_text("alignkit.yaml", "```\n" + dump_yaml(run.resolved) + "```")  # as transformers' "args"
        self.folder = folder

    def log(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()  # as transformers does: a crashed run keeps every step it logged

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    def __init__(self, run: Any) -> None:
        import wandb

        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "alignkit"), name=Path(run.output).name,
                              config=run.resolved, dir=str(run.output))

    def log(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


class TrackioLogger:
    def __init__(self, run: Any) -> None:
        import trackio

        self.trackio = trackio
        trackio.init(project=os.environ.get("TRACKIO_PROJECT", "alignkit"), name=Path(run.output).name,
                     config=run.resolved)

    def log(self, values: dict[str, float], step: int) -> None:
        self.trackio.log(values, step=step)

    def close(self) -> None:
        self.trackio.finish()


BACKENDS = {"tensorboard": TensorBoardLogger, "wandb": WandbLogger, "trackio": TrackioLogger}


@hookimpl
def train_started(run: Any) -> None:
    names = list(getattr(run.config, "report_to", []) or [])
    if names:
        run.state[STATE_KEY] = [BACKENDS[name](run) for name in names]


@hookimpl
def step_logged(run: Any, record: dict[str, Any]) -> None:
    loggers = run.state.get(STATE_KEY)
    if loggers:
        values, step = tags(record), int(record["step"])
        for logger in loggers:
            logger.log(values, step)


@hookimpl
def train_finished(run: Any) -> None:
    for logger in run.state.pop(STATE_KEY, []):
        logger.close()
