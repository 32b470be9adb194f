"""A run folder holds one run: --resume never loads another run's checkpoint, a fresh run never mixes with an old one,
a torn metrics line never blocks a resume, Ctrl-C saves and says how to continue, and a SIGKILL during decode
loses nothing that was written."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tiny import save_tiny

HERE = Path(__file__).parent
COMMON = ["--dtype", "fp32", "--device", "cpu", "--learning-rate", "1e-2", "--lr-schedule", "constant"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    pairs = root / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"w{3 + i % 9} w{20 + i % 7}", "chosen": f" w{7 + i % 5}",
                                         "rejected": f" w{30 + i % 11}"}) + "\n" for i in range(8)))
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"w{3 + i} w{20 + i}"}) + "\n" for i in range(4)))
    return {"model": str(save_tiny(root / "model")), "pairs": str(pairs), "prompts": str(prompts)}


# The CLI in a fresh process; `at` makes the loop signal itself after that step (a test seam of engine.train).
LAUNCH = """
import os, signal, sys
import alignkit.engine.train as train
at, how = int(sys.argv[1]), getattr(signal, sys.argv[2])
if at:
    train._after_step = lambda step: step == at and os.kill(os.getpid(), how)
from alignkit.cli import main
sys.argv = ["alignkit", *sys.argv[3:]]
main()
"""


def alignkit(*args, signal_at=0, how="SIGINT"):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", LAUNCH, str(signal_at), how, *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=600)


def train(files, output, *extra, **kw):
    return alignkit("train", "dpo", "--model", files["model"], "--data", files["pairs"], "--batch-size", "2",
                    "--output", output, *COMMON, *extra, **kw)


def metrics(folder):
    return [json.loads(line) for line in (Path(folder) / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_resume_refuses_another_runs_checkpoint_and_overwrite_replaces_it(files, tmp_path):
    out = tmp_path / "run"
    first = train(files, out, "--max-steps", "4", "--save-steps", "2", "--seed", "0")
    assert first.returncode == 0, first.stderr
    other = train(files, out, "--max-steps", "2", "--seed", "1", "--resume")
    assert other.returncode == 2 and "Traceback" not in other.stderr
    line = [ln for ln in other.stderr.splitlines() if ln.startswith("error:")]
    assert len(line) == 1
    assert "holds another run" in line[0] and "its checkpoint step-000004" in line[0]
    assert "max_steps: 4 there, 2 here" in line[0] and "seed: 0 there, 1 here" in line[0] and "--overwrite" in line[0]
    fresh = train(files, out, "--max-steps", "2", "--seed", "1")  # no --resume, other settings: another run
    assert fresh.returncode == 2 and "holds another run, so this run cannot use it" in fresh.stderr
    again = train(files, out, "--max-steps", "4", "--save-steps", "2", "--seed", "0")  # the same run, from 0?
    assert again.returncode == 2 and "already holds a run (checkpoint step-000004" in again.stderr
    assert "continue it with --resume" in again.stderr
    replaced = train(files, out, "--max-steps", "2", "--seed", "1", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert [r["step"] for r in metrics(out)] == [1, 2]
    assert not (out / "checkpoints").exists()  # the replaced run's checkpoints can never load again
    assert json.loads((out / "alignkit-run.json").read_text())["seed"] == 1


@pytest.mark.slow
def test_ctrl_c_finishes_the_step_saves_and_says_how_to_resume(files, tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert train(files, whole, "--max-steps", "4").returncode == 0
    # the signal comes once step 2 is done, while step 3 runs: step 3 is finished and checkpointed
    stopped = train(files, cut, "--max-steps", "4", signal_at=2)
    assert stopped.returncode == 130, stopped.stderr
    assert "interrupted: stopped at step 3 of 4" in stopped.stderr and "--resume" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert (cut / "checkpoints" / "step-000003").is_dir() and [r["step"] for r in metrics(cut)] == [1, 2, 3]
    # a crash tore the last metrics line: dropped and said on resume, never fatal
    with (cut / "metrics.jsonl").open("a") as f:
        f.write('{"step": 4, "lo')
    resumed = train(files, cut, "--max-steps", "4", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "dropped 1 unreadable line" in resumed.stderr
    assert [r["loss"] for r in metrics(cut)] == pytest.approx([r["loss"] for r in metrics(whole)], rel=1e-6)
    from transformers import AutoModelForCausalLM

    a, b = (AutoModelForCausalLM.from_pretrained(p).state_dict() for p in (whole, cut))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.mark.slow
def test_sigterm_stops_at_a_step_too(files, tmp_path):
    stopped = train(files, tmp_path / "t", "--max-steps", "3", signal_at=1, how="SIGTERM")
    assert stopped.returncode == 130 and "SIGTERM: finishing this step" in stopped.stderr
    assert "stopped at step 2 of 3" in stopped.stderr


@pytest.mark.slow
def test_decode_killed_mid_run_loses_no_written_batch(files, tmp_path):
    args = ["decode", "--model", files["model"], "--prompts", files["prompts"], "--num-samples", "4",
            "--batch-size", "4", "--max-new-tokens", "5", "--device", "cpu"]
    assert alignkit(*args, "--output", tmp_path / "whole.jsonl").returncode == 0
    kill = """
import os, signal, sys
import alignkit.engine.sample as sample
real, calls = sample.sample_batch, []
def dying(*a, **k):
    calls.append(1)
    if len(calls) == 3:  # two batches are on disk: die while sampling the third
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*a, **k)
sample.sample_batch = dying
from alignkit.cli import main
sys.argv = ["alignkit", *sys.argv[1:]]
main()
"""
    cut = tmp_path / "cut.jsonl"
    died = subprocess.run([sys.executable, "-c", kill, *args, "--output", str(cut)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert died.returncode == -signal.SIGKILL
    assert len(cut.read_text().splitlines()) == 8
    again = alignkit(*args, "--output", cut)
    assert again.returncode == 0 and "8 already there" in again.stderr
    assert cut.read_text() == (tmp_path / "whole.jsonl").read_text()
    other = alignkit(*args, "--output", cut, "--seed", "3")  # another run's samples: refused, then replaced
    assert other.returncode == 2 and "sampling.seed: 0 there, 3 here" in other.stderr
    assert alignkit(*args, "--output", cut, "--seed", "3", "--overwrite").returncode == 0
    assert json.loads(cut.read_text().splitlines()[0])["sampling"]["seed"] == 3


@pytest.mark.slow  # three prepare processes: ~9 s
def test_prepare_killed_while_writing_keeps_the_old_set(tmp_path):
    data = tmp_path / "prefs.jsonl"
    data.write_text('{"prompt": "describe the sky :", "chosen": " blue", "rejected": " red"}\n')
    out = tmp_path / "prepared"
    first = subprocess.run([sys.executable, "-m", "alignkit", "prepare", str(data), "--output", str(out)],
                           capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    before = (out / "manifest.json").read_text()
    data.write_text(data.read_text() * 3)
    kill = """
import os, signal, sys
import datasets
def dying(self, path, **kw):
    open(os.path.join(path, "data-00000-of-00001.arrow"), "wb").write(b"torn")
    os.kill(os.getpid(), signal.SIGKILL)
datasets.Dataset.save_to_disk = dying
from alignkit.cli import main
sys.argv = ["alignkit", "prepare", sys.argv[1], "--output", sys.argv[2]]
main()
"""
    died = subprocess.run([sys.executable, "-c", kill, str(data), str(out)], capture_output=True, text=True)
    assert died.returncode == -signal.SIGKILL
    assert (out / "manifest.json").read_text() == before  # the old set, whole
    import datasets

    assert len(datasets.load_from_disk(str(out))) == 1
    again = subprocess.run([sys.executable, "-m", "alignkit", "prepare", str(data), "--output", str(out)],
                           capture_output=True, text=True)
    assert again.returncode == 0 and len(datasets.load_from_disk(str(out))) == 3
    assert not list(tmp_path.glob(".prepared.*"))  # the torn hidden folder was cleared by the next prepare
