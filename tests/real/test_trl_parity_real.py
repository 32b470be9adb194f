"""First-step DPO and SimPO figures on SmolLM2: `alignkit train` through the CLI against TRL 1.16 on the same
conversational rows, the same reference and a learning rate of 0 (fp32 on both sides, one batch of 4 pairs).

- DPO: alignkit `train dpo --ref-model <perturbed copy>` vs `trl.DPOTrainer`, which tokenizes the rows itself (its
  _prepare_dataset) and collates them (its train dataloader); its loss code then computes the first batch
  (`_compute_loss`, what its training step calls), so tokenization, log-probs and loss are compared at once.
- alignkit trains with --lora: the adapter starts at zero, so the first step's policy is exactly SmolLM2, and the
  step costs a LoRA backward instead of a full one and a 135M-parameter AdamW step (the lane must stay short).
- SimPO: alignkit `train simpo` vs `trl.experimental.cpo.CPOTrainer(loss_type="simpo", cpo_alpha=0)`'s loss code.
  CPOTrainer tokenizes with its own legacy rule (chat text, then EOS appended when the last token is not EOS), which
  puts a second <|im_end|> after ChatML's "<|im_end|>\\n"; TRL's DPOTrainer and alignkit do not. So its loss is fed
  DPOTrainer's token ids (TRL's code again), and the test also pins the one-token difference it would otherwise make.
"""
import pytest
from real_helpers import cli, pair_rows, read_jsonl, write_jsonl
from tokenize_checks import forget_accelerator

pytestmark = [pytest.mark.real, pytest.mark.slow]
trl = pytest.importorskip("trl")

ROWS = [pair_rows()[i] for i in (0, 1, 16, 18)]  # one-turn, one-turn, a system turn, an earlier exchange
BETA_DPO, BETA_SIMPO, GAMMA = 0.1, 2.0, 0.5
TOLERANCE = 1e-4


def compare(ours: dict, theirs: dict, keys, scale: dict | None = None) -> str:
    """A table of both sides' figures (printed with -s, kept in the failure message), and the keys that differ.

    A key differs when it is off by more than TOLERANCE relative to its own size, or, for a key in `scale`, to the
    size of the terms it is a difference of: DPO's rewards are β (log π − log π_ref) of two log-probs near −7 and
    their margin is a difference again, so float noise of 1e-6 in a log-prob (the BLAS of one CPU against another)
    is 5e-4 of a 0.004 margin, while a real mistake (a wrong β or reference) moves it by the whole 1e-2."""
    scale = scale or {}
    lines = [f"{k:18s} alignkit {ours.get(k, float('nan')):+.6f}  TRL {theirs[k]:+.6f}" for k in keys]
    bad = [k for k in keys if k not in ours
           or abs(ours[k] - theirs[k]) > TOLERANCE * max(abs(theirs[k]), scale.get(k, 0.0), 1e-8)]
    print("\n" + "\n".join(lines))
    return ("differ beyond 1e-4 relative: " + ", ".join(bad) + "\n" + "\n".join(lines)) if bad else ""


def alignkit_first_step(objective, tmp_path, *flags):
    data = write_jsonl(tmp_path / "rows.jsonl", ROWS)
    out = tmp_path / f"alignkit-{objective}"
    cli("train", objective, "--data", data, "--output", out, "--learning-rate", 0, "--max-steps", 1, "--lora",
        "--lora-rank", 2, "--batch-size", len(ROWS), "--dtype", "fp32", "--device", "cpu", *flags)
    return read_jsonl(out / "metrics.jsonl")[0]


def test_dpo_first_step_matches_trl(smollm2_dir, perturbed_ref_dir, tmp_path):
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    ours = alignkit_first_step("dpo", tmp_path, "--model", smollm2_dir, "--ref-model", perturbed_ref_dir,
                               "--beta", BETA_DPO)
    args = DPOConfig(output_dir=str(tmp_path / "trl-dpo"), beta=BETA_DPO, loss_type=["sigmoid"], learning_rate=0.0,
                     per_device_train_batch_size=len(ROWS), report_to=[], use_cpu=True, max_length=None, seed=0,
                     bf16=False)  # TRL defaults to bf16 autocast, even on CPU: its reference would run in bf16
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype="float32"),
                         ref_model=AutoModelForCausalLM.from_pretrained(perturbed_ref_dir, dtype="float32"),
                         args=args, train_dataset=Dataset.from_list(ROWS),
                         processing_class=AutoTokenizer.from_pretrained(smollm2_dir))
    batch = next(iter(trainer.get_train_dataloader()))  # all 4 rows: the mean figures do not depend on order
    trainer.model.train()
    with torch.no_grad():
        loss = trainer._compute_loss(trainer.model, batch, return_outputs=False)
    forget_accelerator()
    theirs = {"loss": loss.item(), **{k: v[-1] for k, v in trainer._metrics["train"].items()}}
    logp_size = BETA_DPO * max(abs(theirs["logps/chosen"]), abs(theirs["logps/rejected"]))  # what rewards cancel
    problem = compare(ours, theirs, ("loss", "logps/chosen", "logps/rejected", "rewards/chosen",
                                     "rewards/rejected", "rewards/margins"),
                      scale={k: logp_size for k in ("rewards/chosen", "rewards/rejected", "rewards/margins")})
    assert not problem, problem


def cpo_batch(ids_rows, pad):
    """CPOTrainer's batch layout (prompt + response per side, prompt labels -100) from token id rows."""
    import torch

    def padded(seqs, value):
        width = max(len(s) for s in seqs)
        return torch.tensor([s + [value] * (width - len(s)) for s in seqs])

    batch = {}
    for side in ("chosen", "rejected"):
        seqs = [r["prompt_ids"] + r[f"{side}_ids"] for r in ids_rows]
        labels = [[-100] * len(r["prompt_ids"]) + r[f"{side}_ids"] for r in ids_rows]
        batch[f"{side}_input_ids"] = padded(seqs, pad)
        batch[f"{side}_attention_mask"] = padded([[1] * len(s) for s in seqs], 0)
        batch[f"{side}_labels"] = padded(labels, -100)
    return batch


def test_simpo_first_step_matches_trl_cpo_simpo(smollm2_dir, smollm2_tokenizer, tmp_path):
    import torch
    from datasets import Dataset
    from tokenize_checks import trl_tokenized
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    ours = alignkit_first_step("simpo", tmp_path, "--model", smollm2_dir, "--beta", BETA_SIMPO, "--gamma", GAMMA)
    ids = trl_tokenized(smollm2_tokenizer, ROWS)  # DPOTrainer's ids: what alignkit trains on (before CPOTrainer
    # exists: trl_tokenized drops the accelerate state its DPOTrainer made, which CPOTrainer's would share)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    args = CPOConfig(output_dir=str(tmp_path / "trl-cpo"), loss_type="simpo", cpo_alpha=0.0, beta=BETA_SIMPO,
                     simpo_gamma=GAMMA, report_to=[], use_cpu=True, per_device_train_batch_size=len(ROWS), bf16=False)
    trainer = CPOTrainer(model=AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype="float32"), args=args,
                         train_dataset=Dataset.from_list(ROWS), processing_class=tokenizer)
    # CPOTrainer's own tokenization differs by one EOS after each response (the module docstring says why)
    own = trainer.train_dataset[0]
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert own["chosen_input_ids"] == ids[0]["prompt_ids"] + ids[0]["chosen_ids"] + [im_end]

    trainer.model.train()
    with torch.no_grad():
        loss, metrics = trainer.get_batch_loss_metrics(trainer.model, cpo_batch(ids, tokenizer.pad_token_id))
    forget_accelerator()
    theirs = {"loss": loss.item(), **metrics}
    # logps/* are compared as TRL logs them for SimPO: mean token log-probs (the objective is length-normalised)
    problem = compare(ours, theirs, ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins",
                                     "logps/chosen", "logps/rejected"))
    assert not problem, problem
