"""Many processes through accelerate on CPU (gloo), launched as users launch them (`torchrun -m alignkit`):
2 processes × --batch-size 4 train exactly what 1 process × --batch-size 8 trains (pairwise and online), a 2-process
run resumes from its own checkpoint and refuses one of another world size, decode on 2 processes writes the file
1 process writes, and a launcher whose peer never comes is one line."""
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tiny import save_tiny

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent
REWARD = f"{HERE / 'online_rewards.py'}:likes_w7"
COMMON = ["--dtype", "fp32", "--device", "cpu", "--learning-rate", "1e-2", "--max-grad-norm", "0",
          "--lr-schedule", "constant"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    model = save_tiny(root / "model")
    pairs = root / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"w{3 + i % 9} w{20 + i % 7}", "chosen": f" w{7 + i % 5}",
                                         "rejected": f" w{30 + i % 11} w{40 + i % 3}"}) + "\n" for i in range(16)))
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"w{3 + i} w{20 + i}"}) + "\n" for i in range(4)))
    return {"model": str(model), "pairs": str(pairs), "prompts": str(prompts)}


def alignkit(*args, processes=1, env=None, check=True):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    command = (launcher + ["-m", "alignkit"]) if processes > 1 else [sys.executable, "-m", "alignkit"]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    out = subprocess.run(command + [str(a) for a in args], capture_output=True, text=True, env=full_env,
                         timeout=600)
    if check:
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def metrics(folder):
    return [json.loads(line) for line in (Path(folder) / "metrics.jsonl").read_text().splitlines()]


def weights(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


def assert_same_training(one, two, keys, rel=1e-4):
    a, b = metrics(one), metrics(two)
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, len(a) + 1))  # one row a step
    for ra, rb in zip(a, b):
        for k in keys:
            assert ra[k] == pytest.approx(rb[k], rel=rel, abs=1e-6), (k, ra["step"], ra[k], rb[k])
    wa, wb = weights(one), weights(two)
    # Adam's first steps move every weight by about ±lr whatever its gradient, so float noise in a near-zero
    # gradient can flip a sign: weights agree to a fraction of the learning rate, not to float precision.
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 2e-3


def test_two_processes_of_four_pairs_train_what_one_process_of_eight_does(files, tmp_path):
    args = ["train", "dpo", "--model", files["model"], "--data", files["pairs"], "--max-steps", "3", *COMMON]
    alignkit(*args, "--batch-size", "8", "--output", tmp_path / "one")
    two = alignkit(*args, "--batch-size", "4", "--output", tmp_path / "two", processes=2)
    assert "global batch: 4 per process × 2 process(es) × 1 accumulation = 8 pairs" in two.stdout
    assert two.stdout.count("saved the model") == 1  # only the main process writes and prints
    assert_same_training(tmp_path / "one", tmp_path / "two", ("loss", "rewards/margins", "logps/chosen", "grad_norm"))


def test_a_tied_model_on_two_processes_trains_what_one_process_does(files, tmp_path):
    """The tied embedding's rows are added inside the weight's gradient accumulation, before DDP averages it
    (alignkit.engine.tied_embedding): added after, the first step's gradient norm is 0.47 against 0.60."""
    model = save_tiny(tmp_path / "tied", tied=True)
    clipped = [("1.0" if prev == "--max-grad-norm" else a) for prev, a in zip(["", *COMMON], COMMON)]  # with clipping
    args = ["train", "dpo", "--model", model, "--data", files["pairs"], "--max-steps", "3", *clipped]
    alignkit(*args, "--batch-size", "8", "--output", tmp_path / "one")
    alignkit(*args, "--batch-size", "4", "--output", tmp_path / "two", processes=2)
    alignkit(*args, "--batch-size", "4", "--output", tmp_path / "dense", "--no-sparse-embedding-grad", processes=2)
    keys = ("loss", "rewards/margins", "grad_norm")
    assert_same_training(tmp_path / "one", tmp_path / "two", keys, rel=1e-5)
    assert_same_training(tmp_path / "dense", tmp_path / "two", keys, rel=1e-5)


def test_online_two_processes_sample_and_step_as_one(files, tmp_path):
    args = ["train", "qempo", "--online", "--model", files["model"], "--prompts", files["prompts"], "--reward", REWARD,
            "--group-size", "4", "--max-new-tokens", "6", "--max-steps", "3", "--min-reward", "0.5", *COMMON]
    alignkit(*args, "--batch-size", "4", "--output", tmp_path / "one")
    alignkit(*args, "--batch-size", "2", "--output", tmp_path / "two", processes=2)
    # each prompt's group draws from its own generator, so the samples, rewards and dual ascent are the same; the
    # loss divides by each group's reward spread, which turns the weights' float noise after two Adam steps into
    # 1e-4 to 1e-3 of the loss by step 3 (1.0e-3 seen on CI's CPU): the loss gets a looser bound than the rest
    assert_same_training(tmp_path / "one", tmp_path / "two", ("reward", "entropy", "lambda"), rel=1e-3)
    for ra, rb in zip(metrics(tmp_path / "one"), metrics(tmp_path / "two")):
        assert ra["loss"] == pytest.approx(rb["loss"], rel=5e-3), (ra["step"], ra["loss"], rb["loss"])


def test_a_two_process_run_resumes_from_its_checkpoint_and_refuses_another_world_size(files, tmp_path):
    args = ["train", "dpo", "--model", files["model"], "--data", files["pairs"], "--batch-size", "4",
            "--max-steps", "4", "--save-steps", "2", *COMMON]
    alignkit(*args, "--output", tmp_path / "whole", processes=2)
    # a crash after step 2: only the first checkpoint and two metrics lines survive
    crashed = tmp_path / "crashed"
    shutil.copytree(tmp_path / "whole", crashed)
    shutil.rmtree(crashed / "checkpoints" / "step-000004")
    (crashed / "metrics.jsonl").write_text("".join(line + "\n" for line in
                                                   (crashed / "metrics.jsonl").read_text().splitlines()[:2]))
    refused = alignkit(*args, "--output", crashed, "--resume", check=False)  # one process: another world size
    assert refused.returncode == 2 and "world_size: 2 there, 1 here" in refused.stderr
    resumed = alignkit(*args, "--output", crashed, "--resume", processes=2)
    assert "resuming from" in resumed.stdout and "step 2 of 4" in resumed.stdout
    assert metrics(crashed) == metrics(tmp_path / "whole")  # steps 3 and 4 again, the same figures
    wa, wb = weights(tmp_path / "whole"), weights(crashed)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # the same processes, the same arithmetic: bit for bit


def test_decode_on_two_processes_writes_the_file_one_process_writes(files, tmp_path):
    args = ["decode", "--model", files["model"], "--prompts", files["prompts"], "--num-samples", "3",
            "--batch-size", "2", "--max-new-tokens", "5", "--device", "cpu"]
    alignkit(*args, "--output", tmp_path / "one.jsonl")
    alignkit(*args, "--output", tmp_path / "two.jsonl", processes=2)
    assert (tmp_path / "two.jsonl").read_text() == (tmp_path / "one.jsonl").read_text()
    assert len((tmp_path / "one.jsonl").read_text().splitlines()) == 12  # 4 prompts × 3 samples, each once
    assert not list(tmp_path.glob(".two.jsonl.part*"))


def test_a_launcher_whose_peer_never_comes_is_one_line(files, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
           "ALIGNKIT_DIST_TIMEOUT": "5"}
    out = alignkit("train", "dpo", "--model", files["model"], "--data", files["pairs"], "--output", tmp_path / "x",
                   *COMMON, env=env, check=False)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "could not join the other processes at 127.0.0.1" in lines[0]
    assert "Traceback" not in out.stderr


CONFIGS = sorted((HERE.parents[1] / "examples" / "accelerate").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_example_accelerate_configs_pass_accelerates_own_check(path):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(path))
    assert config.num_processes >= 2
    first = path.read_text().splitlines()[0]
    assert first.startswith("# accelerate launch --config_file examples/accelerate/") and " -m alignkit " in first
