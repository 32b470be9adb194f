"""Resuming `alignkit frontier`: finished points are reused, a changed point alone is recomputed, a failed or
interrupted point runs again, --jobs bounds the processes. The alignkit subprocesses are replaced by a recorder
that writes what eval --exact would (figures made from the command line), so these tests take seconds; the real
commands run in test_frontier_toy.py."""
import json
import os
import threading
import time
from itertools import pairwise
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alignkit.cli import build_app
from alignkit.eval.frontier import runner

SPEC = """\
model: toy:instruct
data: toy:prefs-onpolicy
eval: {exact: true}
methods:
  - name: dpo
    train: {objective: dpo, max_steps: 3}
    sweep: {beta: BETAS}
"""


class FakeAlignkit:
    """Stands in for `python -m alignkit ...`: train makes its folder, eval --exact writes report.json whose
    figures encode the model (start: 0.80 / 4.1; a run trained with beta b: 0.9 - 0.01 b / 3 + 0.1 b)."""

    def __init__(self, fail_on=None, sleep=0.0):
        self.calls, self.fail_on, self.sleep = [], fail_on, sleep
        self.running = self.most = 0
        self.lock = threading.Lock()

    def __call__(self, cmd, stdout, stderr, env, check):
        args = cmd[3:]  # after sys.executable -m alignkit
        with self.lock:
            self.calls.append(args)
            self.running += 1
            self.most = max(self.most, self.running)
        self.env = env
        time.sleep(self.sleep)
        try:
            if self.fail_on and self.fail_on in args:
                stdout.write("loading...\nerror: the fake train failed\n")
                return type("Done", (), {"returncode": 2})()
            flag = dict(pairwise(args))
            out = Path(flag["--output"])
            out.mkdir(parents=True, exist_ok=True)
            if args[0] == "train":
                (out / "alignkit.yaml").write_text("trained\n")
            else:
                model = flag["--model"]
                beta = 0.0 if model == "toy:instruct" else float(model.split("beta")[1].split("-")[0])
                mean = ({"expected_reward": 0.80, "entropy": 4.1} if beta == 0 else
                        {"expected_reward": 0.9 - 0.01 * beta, "entropy": 3.0 + 0.1 * beta})
                (out / "report.json").write_text(json.dumps({"exact": {"mean": mean}}))
            return type("Done", (), {"returncode": 0})()
        finally:
            with self.lock:
                self.running -= 1


@pytest.fixture
def fake(monkeypatch):
    def install(**kwargs):
        recorder = FakeAlignkit(**kwargs)
        monkeypatch.setattr(runner.subprocess, "run", recorder)
        return recorder
    return install


def run(tmp_path, betas, *extra):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.replace("BETAS", betas))
    return CliRunner().invoke(build_app(), ["frontier", str(path), "--output", str(tmp_path / "out"), *extra])


def test_rerun_reuses_every_point_and_one_changed_value_recomputes_one(tmp_path, fake):
    f = fake()
    first = run(tmp_path, "[1, 2]")
    assert first.exit_code == 0, first.output
    assert [c[0] for c in f.calls].count("train") == 2 and [c[0] for c in f.calls].count("eval") == 3
    doc = json.loads((tmp_path / "out" / "frontier.json").read_text())
    assert [p["params"]["beta"] for p in doc["points"]] == [1.0, 2.0]
    assert doc["points"][1]["quality"] == pytest.approx(0.88) and doc["points"][1]["diversity"] == pytest.approx(3.2)
    assert doc["start"]["quality"] == 0.80 and doc["start"]["quality_ci"] is None

    f = fake()
    again = run(tmp_path, "[1, 2]")
    assert again.exit_code == 0 and f.calls == []
    assert again.output.count(": reused (") == 3 and "3 reused, 0 to run" in again.output

    f = fake()
    changed = run(tmp_path, "[1, 3]")
    assert changed.exit_code == 0, changed.output
    assert [c[:2] for c in f.calls] == [["train", "dpo"], ["eval", "--output"]]
    assert "--beta" in f.calls[0] and f.calls[0][f.calls[0].index("--beta") + 1] == "3.0"
    assert changed.output.count(": reused (") == 2 and "dpo beta=3: done in" in changed.output
    points = json.loads((tmp_path / "out" / "frontier.json").read_text())["points"]
    assert [p["quality"] for p in points] == pytest.approx([0.89, 0.87])


def test_an_interrupted_point_starts_over_from_an_empty_folder(tmp_path, fake):
    fake()
    assert run(tmp_path, "[1, 2]").exit_code == 0
    folder = next((tmp_path / "out" / "runs").glob("dpo-beta2-*"))
    (folder / "point.json").unlink()  # as if killed before its last write
    (folder / "half-written.bin").write_text("x")
    f = fake()
    result = run(tmp_path, "[1, 2]")
    assert result.exit_code == 0 and [c[0] for c in f.calls] == ["eval"]  # its model was finished: eval only
    assert not (folder / "half-written.bin").exists() and (folder / "point.json").is_file()
    assert not list(folder.glob("*.tmp"))
    stored = json.loads((folder / "point.json").read_text())
    assert stored["params"] == {"beta": 2.0} and stored["commands"][0][:3] == ["alignkit", "train", "dpo"]
    assert stored["model_reused"] is True and stored["model_folder"].startswith("models/dpo-beta2-")


def test_an_interrupted_training_starts_its_model_over(tmp_path, fake):
    fake()
    assert run(tmp_path, "[1, 2]").exit_code == 0
    model = next((tmp_path / "out" / "models").glob("dpo-beta2-*"))
    assert (model / "train.log").is_file()
    (model / "frontier-model.json").unlink()  # killed during train: the marker is written after it succeeds
    (model / "half-written.bin").write_text("x")
    (next((tmp_path / "out" / "runs").glob("dpo-beta2-*")) / "point.json").unlink()
    f = fake()
    assert run(tmp_path, "[1, 2]").exit_code == 0
    assert [c[:2] for c in f.calls] == [["train", "dpo"], ["eval", "--output"]]
    assert not (model / "half-written.bin").exists() and (model / "frontier-model.json").is_file()


def test_other_eval_settings_measure_every_point_anew_and_train_nothing(tmp_path, fake):
    fake()
    assert run(tmp_path, "[1, 2]").exit_code == 0
    models = sorted(p.name for p in (tmp_path / "out" / "models").iterdir())
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.replace("BETAS", "[1, 2]").replace("{exact: true}", "{exact: true, ref_model: toy:base}"))
    f = fake()
    result = CliRunner().invoke(build_app(), ["frontier", str(path), "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "0 reused, 3 to run" in result.output
    assert [c[0] for c in f.calls] == ["eval"] * 3 and all("toy:base" in c for c in f.calls)
    assert sorted(p.name for p in (tmp_path / "out" / "models").iterdir()) == models  # the same two models
    dry = CliRunner().invoke(build_app(), ["frontier", str(path), "--output", str(tmp_path / "other"), "--dry-run"])
    assert "its trained model reused" not in dry.output and "alignkit train dpo" in dry.output


def test_a_failed_point_is_one_line_and_the_rest_are_kept(tmp_path, fake):
    fake(fail_on="2.0")  # the train of beta=2 fails
    result = run(tmp_path, "[1, 2]")
    assert result.exit_code == 1
    line = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(line) == 1 and "1 of 3 points failed, first dpo beta=2: train exited with 2" in line[0]
    assert "train.log: error: the fake train failed" in line[0] and "rerun the same command" in line[0]
    assert not (tmp_path / "out" / "frontier.json").exists()
    assert len(list((tmp_path / "out" / "runs").glob("*/point.json"))) == 2
    f = fake()
    assert run(tmp_path, "[1, 2]").exit_code == 0 and len(f.calls) == 2  # only the failed point reruns


def test_jobs_bound_the_parallel_processes_and_share_the_cores(tmp_path, fake):
    f = fake(sleep=0.3)
    assert run(tmp_path, "[1, 2, 3, 4]", "--jobs", "2").exit_code == 0
    assert f.most == 2  # never more than --jobs at once, and the two did overlap
    cores = len(os.sched_getaffinity(0))
    assert f.env["OMP_NUM_THREADS"] == str(max(1, cores // 2))
    assert runner.thread_env(1).get("OMP_NUM_THREADS") == os.environ.get("OMP_NUM_THREADS")


def test_bad_jobs_is_a_user_error(tmp_path, fake):
    result = run(tmp_path, "[1]", "--jobs", "0")
    assert result.exit_code == 2 and "--jobs must be at least 1, got 0" in result.output
