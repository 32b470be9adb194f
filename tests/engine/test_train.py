"""The training loop on a tiny Llama: accumulation invariance, crash-and-resume, outputs, divergence."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from alignkit.config import TrainConfig
from alignkit.errors import UserError
from tiny import pair_rows, save_tiny

torch.set_num_threads(1)
HERE = Path(__file__).parent


def objective(name):
    import alignkit_hdpo
    import alignkit_qempo
    import alignkit.builtins.objectives as builtin

    records = []
    for module in (builtin, alignkit_hdpo, alignkit_qempo):
        module.register_objectives(register=records.append)
    return next(r for r in records if r.name == name)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny"))


def train(model_dir, output, monkeypatch, name="dpo", options=None, n_pairs=8, **overrides):
    from alignkit.engine import pairwise
    from alignkit.engine import train as engine

    rows = [{**r, "index": i} for i, r in enumerate(pair_rows(n_pairs, seed=5))]
    monkeypatch.setattr(pairwise, "load_pairs", lambda cfg, tok: rows)
    defaults = dict(model=str(model_dir), data="tiny", output=str(output), dtype="fp32", device="cpu",
                    learning_rate=1e-2, max_grad_norm=0.0, lr_schedule="linear")
    cfg = TrainConfig(**{**defaults, **overrides})
    record = objective(name)
    opts = options or record.options()
    return engine.run(cfg, record, opts, [], {"model": str(model_dir), "objective": name})


def weights(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


def metrics(folder):
    return [json.loads(line) for line in (Path(folder) / "metrics.jsonl").read_text().splitlines()]


def assert_same_run(plain, fast, steps, tol=1e-5):
    """Two runs' folders: the same number of logged steps, losses and saved weights to `tol` (a fast path against
    its plain twin)."""
    a, b = metrics(plain), metrics(fast)
    assert len(a) == len(b) == steps
    for x, y in zip(a, b):
        assert abs(y["loss"] - x["loss"]) <= tol, (x["loss"], y["loss"])
    wa, wb = weights(plain), weights(fast)
    assert all(torch.allclose(wb[k], v, atol=tol) for k, v in wa.items())


def test_accumulation_8x1_equals_2x4(model_dir, tmp_path, monkeypatch):
    a = train(model_dir, tmp_path / "a", monkeypatch, batch_size=8, grad_accum=1, max_steps=2)
    b = train(model_dir, tmp_path / "b", monkeypatch, batch_size=2, grad_accum=4, max_steps=2)
    wa, wb, w0 = weights(a), weights(b), weights(model_dir)
    assert not torch.allclose(wa["lm_head.weight"], w0["lm_head.weight"])  # training moved the weights
    # Adam's first steps are nearly g/|g|, which turns float noise in near-zero gradients into ~1e-5 weight
    # differences; the steps themselves move weights by ~1e-2. grad_norm (not scale-free) pins the scaling.
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-4), k
    ma, mb = metrics(a), metrics(b)
    for step in (0, 1):
        for key in ("loss", "logps/chosen", "rewards/margins", "grad_norm"):
            assert ma[step][key] == pytest.approx(mb[step][key], rel=1e-5, abs=1e-6), (step, key)
    assert ma[0]["loss"] == pytest.approx(0.693147, abs=1e-5)  # policy == reference at step 1: −log σ(0)


def test_outputs_and_metric_names(model_dir, tmp_path, monkeypatch):
    out = train(model_dir, tmp_path / "o", monkeypatch, name="qempo", batch_size=4, max_steps=2, warmup_steps=1)
    rows = metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    for key in ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
                "logps/chosen", "logps/rejected", "grad_norm", "learning_rate"):
        assert key in rows[0]
    assert rows[0]["learning_rate"] == pytest.approx(1e-2 / 2)  # warm-up step 1 of 1: (0 + 1) / (1 + 1)
    assert (out / "alignkit.yaml").is_file() and (out / "tokenizer.json").is_file()
    assert "lm_head.weight" in weights(out)
    # qempo's default constraint is quality: reference-free, so no reference cache is written
    assert not (out / "ref_logps.pt").exists()


def test_lora_saves_an_adapter_and_starts_at_the_reference(model_dir, tmp_path, monkeypatch):
    out = train(model_dir, tmp_path / "l", monkeypatch, batch_size=4, max_steps=2, lora=True, lora_rank=4,
                ref_mode="per-step")
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(model_dir)
    assert metrics(out)[0]["loss"] == pytest.approx(0.693147, abs=1e-5)  # adapter starts at zero: −log σ(0)
    assert metrics(out)[1]["rewards/margins"] != 0


def test_qempo_kl_with_lora_uses_the_adapter_off_model_as_reference(model_dir, tmp_path, monkeypatch):
    """--constraint kl --lora: the reference is the adapter-off model. At step 1 (adapter at zero) the loss equals
    full fine-tuning's against a frozen copy, and is not log 2 (γ = 0.5 leaves β(1−γ)Δ_ref). Over three steps,
    the reference computed every step with the adapter off (--ref-mode per-step) equals the one precomputed from
    the starting model before training: an adapter left on would move it from step 2."""
    import alignkit_qempo

    opts = alignkit_qempo.QEMPOOptions(constraint="kl", beta=0.5, gamma=0.5)
    run = lambda name, **kw: train(model_dir, tmp_path / name, monkeypatch, name="qempo", options=opts,  # noqa: E731
                                   batch_size=4, max_steps=3, **kw)
    full, pre, onl = run("f"), run("p", lora=True, lora_rank=4), run("o", lora=True, lora_rank=4, ref_mode="per-step")
    assert (pre / "adapter_config.json").is_file() and (pre / "ref_logps.pt").is_file()
    assert metrics(pre)[0]["loss"] == pytest.approx(metrics(full)[0]["loss"], rel=1e-5)
    assert abs(metrics(full)[0]["loss"] - 0.693147) > 1e-3
    for a, b in zip(metrics(pre), metrics(onl)):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    assert metrics(pre)[0]["grad_norm"] > 0  # the adapter moved after step 1


def test_precomputed_reference_equals_online(model_dir, tmp_path, monkeypatch):
    pre = train(model_dir, tmp_path / "p", monkeypatch, batch_size=4, max_steps=3, ref_mode="precompute")
    onl = train(model_dir, tmp_path / "n", monkeypatch, batch_size=4, max_steps=3, ref_mode="per-step")
    assert (pre / "ref_logps.pt").is_file()
    for a, b in zip(metrics(pre), metrics(onl)):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["rewards/chosen"] == pytest.approx(b["rewards/chosen"], rel=1e-4, abs=1e-6)


def test_divergence_is_a_user_error_naming_the_step_and_the_last_checkpoint(model_dir, tmp_path, monkeypatch):
    """A loss that turns NaN on its second call: step 1 is checkpointed, step 2 stops the run."""
    import dataclasses

    from alignkit.builtins.losses import dpo_loss

    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        out = dpo_loss(*args, **kwargs)
        return dataclasses.replace(out, losses=out.losses * (float("nan") if len(calls) == 2 else 1.0))

    record = dataclasses.replace(objective("dpo"), pairwise_loss=flaky)
    monkeypatch.setattr(sys.modules[__name__], "objective", lambda name: record)
    with pytest.raises(UserError, match=r"at step 2; the last good checkpoint is .*step-000001.*--learning-rate"):
        train(model_dir, tmp_path / "d", monkeypatch, batch_size=8, max_steps=3, save_steps=1)
    assert [m["step"] for m in metrics(tmp_path / "d")] == [1]


CRASH_SCRIPT = """
import os, signal, sys, torch
sys.path.insert(0, {here!r})
torch.set_num_threads(1)
from test_train import objective
from tiny import pair_rows
from alignkit.config import TrainConfig
from alignkit.engine import pairwise, train as engine
rows = [{{**r, "index": i}} for i, r in enumerate(pair_rows(8, seed=5))]
pairwise.load_pairs = lambda cfg, tok: rows
kill_at = int(sys.argv[2])
if kill_at:
    engine._after_step = lambda step: step == kill_at and os.kill(os.getpid(), signal.SIGKILL)
cfg = TrainConfig(model={model!r}, data="tiny", output=sys.argv[1], dtype="fp32", device="cpu",
                  learning_rate=1e-2, batch_size=2, grad_accum=2, max_steps=6, save_steps=2,
                  lr_schedule="cosine", warmup_steps=1, resume=bool(kill_at == 0 and len(sys.argv) > 3))
record = objective("dpo")
engine.run(cfg, record, record.options(), [], {{}})
"""


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(model_dir, tmp_path):
    script = tmp_path / "crash.py"
    script.write_text(CRASH_SCRIPT.format(here=str(HERE), model=str(model_dir)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = lambda *args: subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True)
    whole = run(str(tmp_path / "whole"), "0")
    assert whole.returncode == 0, whole.stderr
    crashed = run(str(tmp_path / "crash"), "5")  # killed after step 5; the newest checkpoint is step 4
    assert crashed.returncode == -signal.SIGKILL
    assert sorted(p.name for p in (tmp_path / "crash" / "checkpoints").iterdir()) == ["step-000002", "step-000004"]
    # Without its cache the reference must be recomputed from the starting weights, not the checkpoint's.
    (tmp_path / "crash" / "ref_logps.pt").unlink()
    resumed = run(str(tmp_path / "crash"), "0", "resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stdout
    wa, wb = weights(tmp_path / "whole"), weights(tmp_path / "crash")
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6), k
    ma, mb = metrics(tmp_path / "whole"), metrics(tmp_path / "crash")
    assert [m["step"] for m in mb] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(ma, mb):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)
        assert a["learning_rate"] == pytest.approx(b["learning_rate"], rel=1e-9)


def test_eval_split_holds_out_pairs_and_logs_eval_metrics(model_dir, tmp_path, monkeypatch):
    """Learning rate 0: the policy stays the reference, so the held-out DPO loss is −log σ(0) = 0.693147."""
    from alignkit.engine.pairwise import split_for_eval

    rows = [{**r, "index": i} for i, r in enumerate(pair_rows(8, seed=5))]
    assert split_for_eval(rows, 0.25, seed=0) == 6
    assert [r["index"] for r in rows] == list(range(8))
    assert sorted(r["chosen_input_ids"] for r in rows) == sorted(r["chosen_input_ids"] for r in pair_rows(8, seed=5))
    out = train(model_dir, tmp_path / "e", monkeypatch, batch_size=3, max_steps=2, eval_split=0.25, eval_steps=1,
                learning_rate=0.0)
    rows = metrics(out)
    assert [r["eval/loss"] for r in rows] == pytest.approx([0.693147, 0.693147], abs=1e-5)
    assert rows[0]["epoch"] == pytest.approx(0.5)  # 6 training pairs in batches of 3: 2 micro-batches per epoch


def test_bf16_compute_keeps_fp32_master_weights(model_dir, tmp_path, monkeypatch):
    """An Adam step of 1e-5 on weights of size ~0.02 is below bf16's resolution (2^-8 relative): with bf16
    weights almost nothing would change. fp32 master weights under bf16 autocast move nearly every entry."""
    out = train(model_dir, tmp_path / "b", monkeypatch, batch_size=8, max_steps=1, dtype="bf16", learning_rate=1e-5,
                lr_schedule="constant")
    after, before = weights(out)["lm_head.weight"], weights(model_dir)["lm_head.weight"]
    assert after.dtype == torch.float32
    assert (after != before).float().mean() > 0.9
