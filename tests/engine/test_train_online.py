"""Online training through the shared loop on a tiny Llama: the policy gradient raises a reward, the multipliers
follow dual ascent and survive a crash, the logged metrics, and the errors for mixing the modes."""
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import alignkit_qempo
from alignkit.cli import build_app
from alignkit.config import TrainConfig
from alignkit.errors import UserError
from tiny import save_tiny

torch.set_num_threads(1)
HERE = Path(__file__).parent
REWARD = f"{HERE / 'online_rewards.py'}:likes_w7"


def qempo():
    records = []
    alignkit_qempo.register_objectives(register=records.append)
    return records[0]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny-online"))


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"w{3 + i} w{20 + i}"}) + "\n" for i in range(4)))
    return path


def train(model_dir, prompts, output, options=None, **overrides):
    from alignkit.engine import train as engine

    defaults = dict(model=str(model_dir), prompts=str(prompts), reward=REWARD, output=str(output), online=True,
                    dtype="fp32", device="cpu", batch_size=4, group_size=4, max_new_tokens=6, max_steps=4,
                    learning_rate=1e-2, lr_schedule="constant")
    opts = alignkit_qempo.QEMPOOptions(**(options or {}))
    return engine.run(TrainConfig(**{**defaults, **overrides}), qempo(), opts, [], {"objective": "qempo"})


def metrics(folder):
    return [json.loads(line) for line in (Path(folder) / "metrics.jsonl").read_text().splitlines()]


def weights(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


def test_policy_gradient_raises_the_reward(model_dir, prompts, tmp_path):
    """λ = 1/τ = 50 makes the reward dominate the entropy bonus; 16 completions a step. The untrained model says
    w7 in about 10 % of its 6-token completions; a sign error in the loss would drive that to 0."""
    out = train(model_dir, prompts, tmp_path / "r", {"tau": 0.02}, max_steps=30)
    rows = metrics(out)
    first, last = sum(r["reward"] for r in rows[:5]) / 5, sum(r["reward"] for r in rows[-5:]) / 5
    assert first < 0.3 and last > 0.6, (first, last)


def test_logged_metrics_and_a_kl_reference(model_dir, prompts, tmp_path):
    out = train(model_dir, prompts, tmp_path / "m", {"constraint": "kl", "beta": 0.1, "gamma": 0.5}, max_steps=2)
    row = metrics(out)[0]
    for key in ("reward", "reward_std", "entropy", "kl", "completion_length", "lambda", "eta",
                "samples_per_second", "loss", "grad_norm", "learning_rate", "epoch"):
        assert key in row, key
    assert row["lambda"] == pytest.approx(20.0) and row["eta"] == pytest.approx(1.0)  # kl: (1+η)/β, γ/(1−γ)
    # the policy starts as the reference: the first step's KL estimate is 0 up to float noise
    assert row["kl"] == pytest.approx(0.0, abs=1e-5)
    assert 0 < row["entropy"] and 1 <= row["completion_length"] <= 6
    assert "kl" not in metrics(train(model_dir, prompts, tmp_path / "q", max_steps=1))[0]  # quality loads no reference


def test_dpo_online_returns_by_hand_and_a_run_through_the_cli(model_dir, prompts, tmp_path):
    """`train dpo --online`: DPO's objective E[r] − β KL by policy gradient,
    return r/β − (log π_θ − log π_ref)."""
    from alignkit.builtins.objectives import DPOOptions, dpo_online_returns, dpo_online_state

    state = dpo_online_state(DPOOptions(beta=0.5))
    assert state == {"lambda": 2.0}
    got = dpo_online_returns(torch.tensor([1.0, 0.0]), torch.tensor([-3.0, -1.0]), torch.tensor([-2.0, -4.0]),
                             state)
    # 2·1 − (−3 + 2) = 3;  2·0 − (−1 + 4) = −3
    assert got.tolist() == pytest.approx([3.0, -3.0])
    out = tmp_path / "dpo"
    result = CliRunner().invoke(build_app(), [
        "train", "dpo", "--online", "--beta", "0.02", "--model", str(model_dir), "--prompts", str(prompts),
        "--reward", REWARD, "--output", str(out), "--device", "cpu", "--dtype", "fp32", "--batch-size", "4",
        "--group-size", "4", "--max-new-tokens", "6", "--max-steps", "30", "--learning-rate", "1e-2",
        "--lr-schedule", "constant"])
    assert result.exit_code == 0, result.output
    rows = metrics(out)
    assert rows[0]["lambda"] == pytest.approx(50.0) and rows[0]["kl"] == pytest.approx(0.0, abs=1e-5)
    first, last = sum(r["reward"] for r in rows[:5]) / 5, sum(r["reward"] for r in rows[-5:]) / 5
    # the reward climbs (seeds 0-3, both sampling paths: from 0.06-0.20 to 0.58-0.94, a rise of 0.41 or more)
    assert first < 0.3 and last > first + 0.3, (first, last)
    assert rows[-1]["kl"] > 0.1  # it paid for the reward with distance from the reference


def test_online_kl_with_lora_uses_the_adapter_off_model_as_reference(model_dir, prompts, tmp_path):
    """Online --lora: no second model; the KL estimate is 0 while the adapter is still at zero (step 1) and
    grows once it has moved, and the output is an adapter."""
    out = train(model_dir, prompts, tmp_path / "lora", {"constraint": "kl", "beta": 0.1, "gamma": 0.5}, max_steps=6,
                lora=True, lora_rank=4)
    rows = metrics(out)
    assert (out / "adapter_config.json").is_file()
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-5)
    assert abs(rows[-1]["kl"]) > 1e-3


class Crash(Exception):
    pass


def test_resume_restores_the_multipliers(model_dir, prompts, tmp_path, monkeypatch):
    """--min-reward 0.9 moves λ every step. A run stopped after step 3 (checkpoint at 2) and resumed must log
    the same rewards and λ and end with the same weights as an uninterrupted one."""
    from alignkit.engine import train as engine

    opts = {"tau": 0.1, "min_reward": 0.9, "dual_lr": 5.0}
    whole = train(model_dir, prompts, tmp_path / "whole", opts, save_steps=2)

    def crash(step):
        if step == 3:
            raise Crash

    monkeypatch.setattr(engine, "_after_step", crash)
    with pytest.raises(Crash):
        train(model_dir, prompts, tmp_path / "crash", opts, save_steps=2)
    monkeypatch.setattr(engine, "_after_step", None)
    train(model_dir, prompts, tmp_path / "crash", opts, save_steps=2, resume=True)
    a, b = metrics(whole), metrics(tmp_path / "crash")
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    lambdas = [r["lambda"] for r in a]
    assert lambdas[0] == pytest.approx(10.0) and len(set(lambdas)) == 4  # dual ascent moved λ every step
    for x, y in zip(a, b):
        assert (x["reward"], x["lambda"]) == pytest.approx((y["reward"], y["lambda"]), rel=1e-6)
    wa, wb = weights(whole), weights(tmp_path / "crash")
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6), k


def test_modes_do_not_mix(model_dir, prompts, tmp_path):
    app = build_app()
    run = lambda *args: CliRunner().invoke(app, ["train", *args, "--model", str(model_dir), "--output",
                                                 str(tmp_path / "x")])
    result = run("simpo", "--online")
    assert result.exit_code == 2 and "objective 'simpo' has no online training" in result.output
    result = run("qempo", "--min-reward", "0.8")
    assert result.exit_code == 2 and "--min-reward applies to online training only; add --online" in result.output
    result = run("qempo", "--online", "--poet", "--prompts", str(prompts), "--reward", REWARD)
    assert result.exit_code == 2 and "--poet transforms preference pairs" in result.output
    result = run("qempo", "--online", "--group-size", "1", "--prompts", str(prompts), "--reward", REWARD)
    assert result.exit_code == 2 and "--group-size must be at least 2" in result.output
    with pytest.raises(UserError, match="--gamma below 1"):
        train(model_dir, prompts, tmp_path / "g", {"constraint": "kl", "gamma": 1.0})
