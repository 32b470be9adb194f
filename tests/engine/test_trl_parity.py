"""Parity with TRL 1.16 on the same tiny model, reference, token ids and batch: DPO (loss_type sigmoid) and
SimPO (CPOTrainer loss_type simpo, cpo_alpha 0). TRL's own collator and loss code produce its numbers; only
the trainer's training loop is skipped (one _compute_loss / get_batch_loss_metrics call)."""
import pytest
import torch

from alignkit.data.collate import collate_pairs
from alignkit.engine.logprobs import pair_logprobs
from alignkit.builtins.losses import dpo_loss, simpo_loss
from tiny import PAD, pair_rows, tiny_model, tiny_tokenizer

torch.set_num_threads(1)
pytestmark = pytest.mark.slow
trl = pytest.importorskip("trl")

ROWS = pair_rows(4, seed=7)
TEXT = [{"prompt": "w5 w6", "chosen": " w7", "rejected": " w8"}]  # only to construct the trainer


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-8)


def test_dpo_matches_trl():
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    policy, ref = tiny_model(0).train(), tiny_model(1)
    # Different seeds: policy and reference differ, so both log-ratios are far from zero.
    args = DPOConfig(output_dir="/tmp/alignkit-trl-dpo", beta=0.3, loss_type=["sigmoid"], report_to=[],
                     use_cpu=True, bf16=False, max_length=None, per_device_train_batch_size=4)
    trainer = DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=Dataset.from_list(TEXT),
                         processing_class=tiny_tokenizer())
    batch = DataCollatorForPreference(pad_token_id=PAD)(
        [{"prompt_ids": r["prompt_input_ids"], "chosen_ids": r["chosen_input_ids"],
          "rejected_ids": r["rejected_input_ids"]} for r in ROWS])
    trl_loss = trainer._compute_loss(trainer.model, batch, return_outputs=False).item()
    trl_metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}

    ours_batch = collate_pairs(ROWS, PAD)
    pol = pair_logprobs(policy, ours_batch)
    with torch.no_grad():
        refo = pair_logprobs(ref, ours_batch)
    out = dpo_loss(pol["chosen"], pol["rejected"], refo["chosen"], refo["rejected"],
                   chosen_tokens=pol["chosen_tokens"], rejected_tokens=pol["rejected_tokens"], beta=0.3)
    assert rel(out.losses.mean().item(), trl_loss) < 1e-4
    assert rel(pol["chosen"].mean().item(), trl_metrics["logps/chosen"]) < 1e-4
    assert rel(pol["rejected"].mean().item(), trl_metrics["logps/rejected"]) < 1e-4
    assert rel(out.chosen_rewards.mean().item(), trl_metrics["rewards/chosen"]) < 1e-4
    assert rel((out.chosen_rewards - out.rejected_rewards).mean().item(), trl_metrics["rewards/margins"]) < 1e-4


def padded(seqs, value):
    width = max(len(s) for s in seqs)
    return torch.tensor([s + [value] * (width - len(s)) for s in seqs])


def test_simpo_matches_trl_cpo_simpo():
    from datasets import Dataset
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    policy = tiny_model(0).train()
    args = CPOConfig(output_dir="/tmp/alignkit-trl-cpo", loss_type="simpo", cpo_alpha=0.0, bf16=False, beta=2.0,
                     simpo_gamma=0.7, report_to=[], use_cpu=True, per_device_train_batch_size=4)
    trainer = CPOTrainer(model=policy, args=args, train_dataset=Dataset.from_list(TEXT),
                         processing_class=tiny_tokenizer())
    batch = {}
    for side in ("chosen", "rejected"):
        seqs = [r["prompt_input_ids"] + r[f"{side}_input_ids"] for r in ROWS]
        labels = [[-100] * len(r["prompt_input_ids"]) + r[f"{side}_input_ids"] for r in ROWS]
        batch[f"{side}_input_ids"] = padded(seqs, PAD)
        batch[f"{side}_attention_mask"] = padded([[1] * len(s) for s in seqs], 0)
        batch[f"{side}_labels"] = padded(labels, -100)
    trl_loss, trl_metrics = trainer.get_batch_loss_metrics(trainer.model, batch)

    pol = pair_logprobs(policy, collate_pairs(ROWS, PAD))
    out = simpo_loss(pol["chosen"], pol["rejected"], None, None, chosen_tokens=pol["chosen_tokens"],
                     rejected_tokens=pol["rejected_tokens"], beta=2.0, gamma=0.7)
    assert rel(out.losses.mean().item(), trl_loss.item()) < 1e-4
    # TRL's simpo logs the mean token log-prob as logps/*; alignkit logs sums, so compare sum / tokens.
    assert rel((pol["chosen"] / pol["chosen_tokens"]).mean().item(), trl_metrics["logps/chosen"]) < 1e-4
    assert rel((pol["rejected"] / pol["rejected_tokens"]).mean().item(), trl_metrics["logps/rejected"]) < 1e-4
    assert rel(out.chosen_rewards.mean().item(), trl_metrics["rewards/chosen"]) < 1e-4
    assert rel(out.rejected_rewards.mean().item(), trl_metrics["rewards/rejected"]) < 1e-4
