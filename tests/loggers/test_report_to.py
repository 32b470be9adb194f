"""--report-to: the backends' names are resolved before anything loads, and every backend receives exactly the lines
of metrics.jsonl under TRL's tags (`train/loss`, …) at metrics.jsonl's steps. TensorBoard is checked end to end
through its own reader; wandb and trackio through stand-in modules that record their calls (CI installs neither)."""
import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

import alignkit
from alignkit import report_to as C
from alignkit.config import TrainConfig
from alignkit.builtins import loggers
from alignkit.cli import build_app
from alignkit.errors import UserError
from alignkit.registry import Run

PREFS = Path(alignkit.__file__).parent / "toy" / "artifacts" / "prefs.jsonl"


def installed(*names):
    """A find_spec that sees exactly these packages among the backends' (and everything else as it is)."""
    real = importlib.util.find_spec
    return lambda name, *a: (object() if name in names else None) if name in C.REPORT_BACKENDS else real(name, *a)


def test_report_to_is_spelt_as_transformers_spells_it(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", installed("tensorboard", "wandb"))
    assert C.report_targets(["none"]) == [] and C.report_targets([]) == []
    assert C.report_targets(["wandb,tensorboard", "wandb"]) == ["wandb", "tensorboard"]  # order kept, once each
    assert C.report_targets("tensorboard") == ["tensorboard"]  # a YAML scalar
    assert C.report_targets(["all"]) == ["tensorboard", "wandb"]  # every installed one, trackio is not
    assert TrainConfig(report_to=["tensorboard"]).report_to == ["tensorboard"]
    with pytest.raises(UserError, match=r"^unknown --report-to 'tensorbord'; did you mean 'tensorboard'\?"):
        C.report_targets(["tensorbord"])


def test_a_missing_package_is_one_line_before_anything_loads(monkeypatch, tmp_path):
    monkeypatch.setattr(importlib.util, "find_spec", installed())
    result = CliRunner().invoke(build_app(), ["train", "dpo", "--report-to", "tensorboard", "--output",
                                              str(tmp_path / "run")])
    assert result.exit_code == 2
    assert result.output.strip() == ("error: --report-to tensorboard needs the tensorboard package: pip install "
                                     "tensorboard")
    assert not (tmp_path / "run").exists()  # refused while resolving the config, before the run folder exists


def test_tags_are_trl_names_and_the_step_is_the_axis():
    record = {"step": 3, "loss": 0.5, "rewards/chosen": 1, "eval/loss": 0.25, "flag": True, "note": "x"}
    assert loggers.tags(record) == {"train/loss": 0.5, "train/rewards/chosen": 1.0, "eval/loss": 0.25}


class Recorder:
    """Stands in for the wandb and trackio modules: records init / log / finish."""

    def __init__(self):
        self.calls = []

    def init(self, **kwargs):
        self.calls.append(("init", kwargs))
        return self

    def log(self, values, step=None):
        self.calls.append(("log", dict(values), step))

    def finish(self):
        self.calls.append(("finish",))


def test_wandb_and_trackio_get_the_same_lines(monkeypatch, tmp_path):
    fakes = {name: Recorder() for name in ("wandb", "trackio")}
    for name, fake in fakes.items():
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(init=fake.init, log=fake.log,
                                                                     finish=fake.finish))
    monkeypatch.setenv("WANDB_PROJECT", "mine")
    monkeypatch.delenv("TRACKIO_PROJECT", raising=False)
    run = Run(types.SimpleNamespace(report_to=["wandb", "trackio"]), "dpo", {"beta": 0.1}, tmp_path / "dpo-run",
              None, None, 2)
    records = [{"step": 1, "loss": 0.69, "rewards/margins": 0.0}, {"step": 2, "loss": 0.6, "eval/loss": 0.7}]
    loggers.train_started(run)
    for record in records:
        loggers.step_logged(run, record)
    loggers.train_finished(run)
    logged = [("log", {"train/loss": 0.69, "train/rewards/margins": 0.0}, 1),
              ("log", {"train/loss": 0.6, "eval/loss": 0.7}, 2), ("finish",)]
    assert fakes["wandb"].calls == [("init", {"project": "mine", "name": "dpo-run", "config": {"beta": 0.1},
                                              "dir": str(tmp_path / "dpo-run")}), *logged]
    assert fakes["trackio"].calls == [("init", {"project": "alignkit", "name": "dpo-run",
                                                "config": {"beta": 0.1}}), *logged]
    assert loggers.STATE_KEY not in run.state


def scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def expected(metrics_file):
    rows = [json.loads(line) for line in metrics_file.read_text().splitlines()]
    out = {}
    for row in rows:
        for tag, value in loggers.tags(row).items():
            out.setdefault(tag, []).append((row["step"], value))
    return out


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard not installed")
@pytest.mark.skipif(not PREFS.is_file(), reason="toy world not built")
def test_tensorboard_event_files_hold_metrics_jsonl(tmp_path):
    import torch

    torch.set_num_threads(1)
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(PREFS.read_text().splitlines(keepends=True)[:32]))
    out = tmp_path / "run"
    args = ["train", "dpo", "--data", str(data), "--batch-size", "4", "--report-to", "tensorboard",
            "--eval-split", "0.25", "--eval-steps", "2", "--output", str(out)]
    first = CliRunner().invoke(build_app(), [*args, "--max-steps", "4"])
    assert first.exit_code == 0, first.output
    assert list((out / "runs").glob("events.out.tfevents.*"))
    got, want = scalars(out / "runs"), expected(out / "metrics.jsonl")
    assert set(want) >= {"train/loss", "train/rewards/accuracies", "train/grad_norm", "eval/loss"}
    assert got.keys() == want.keys()
    for tag in want:
        assert [s for s, _ in got[tag]] == [s for s, _ in want[tag]], tag
        assert [v for _, v in got[tag]] == pytest.approx([v for _, v in want[tag]], rel=1e-6), tag  # fp32 events
    assert [s for s, _ in got["eval/loss"]] == [2, 4]

    # A new run replacing the old one starts metrics.jsonl again; TensorBoard must not keep the old steps 3 and 4.
    second = CliRunner().invoke(build_app(), [*args, "--max-steps", "2", "--learning-rate", "1e-3", "--overwrite"])
    assert second.exit_code == 0, second.output
    got, want = scalars(out / "runs"), expected(out / "metrics.jsonl")
    assert [s for s, _ in got["train/loss"]] == [1, 2]
    assert [v for _, v in got["train/loss"]] == pytest.approx([v for _, v in want["train/loss"]], rel=1e-6)
