"""IPO's loss and the distinct-openings metric against numbers worked out by hand, and IPO against TRL's own.

Two pairs, the shapes the engine passes ((B,) sums and token counts): policy chosen/rejected log-probs
PC = (−2, −2), PR = (−4, −6); reference RC = (−3, −3), RR = (−3, −4); tokens NC = (2, 4), NR = (3, 2).
Log-ratios chosen (1, 1), rejected (−1, −2).
"""
import pytest
import torch

pytest.importorskip("alignkit_ipo", reason="not installed: pip install ./examples/alignkit-plugin-example")
from alignkit_ipo import distinct_openings  # noqa: E402
from alignkit_ipo.loss import ipo_loss  # noqa: E402

T = torch.tensor
PC, PR, RC, RR = T([-2.0, -2.0]), T([-4.0, -6.0]), T([-3.0, -3.0]), T([-3.0, -4.0])
NC, NR = T([2, 4]), T([3, 2])


def close(a, b):
    assert torch.allclose(a, T(b), atol=1e-6), (a, b)


def test_mean_normalised_by_hand():
    """β = 0.5, target 1/(2β) = 1. Pair 0: h = 1/2 − (−1)/3 = 5/6 → (5/6 − 1)² = 1/36 = 0.027778.
    Pair 1: h = 1/4 − (−2)/2 = 5/4 → (1/4)² = 0.0625. Rewards β·log-ratio sums: (0.5, 0.5) and (−0.5, −1)."""
    out = ipo_loss(PC, PR, RC, RR, chosen_tokens=NC, rejected_tokens=NR, beta=0.5)
    close(out.losses, [1 / 36, 0.0625])
    close(out.chosen_rewards, [0.5, 0.5])
    close(out.rejected_rewards, [-0.5, -1.0])
    assert not out.chosen_rewards.requires_grad


def test_summed_by_hand():
    """normalize="sum", β = 0.5: h = 1 − (−1) = 2 → (2 − 1)² = 1; h = 1 − (−2) = 3 → (3 − 1)² = 4."""
    out = ipo_loss(PC, PR, RC, RR, chosen_tokens=NC, rejected_tokens=NR, beta=0.5, normalize="sum")
    close(out.losses, [1.0, 4.0])


def test_the_minimum_is_a_finite_margin_and_the_gradient_points_to_it():
    """β = 0.25, target 2. Margin exactly 2 (means 1 and −1) → loss 0, gradient 0; DPO's loss would still push.
    Pair 0 above (mean normalised): d loss / d PC = 2(h − 1)·(1/n_w) = 2·(−1/6)·(1/2) = −1/6 at β = 0.5."""
    out = ipo_loss(T([1.0]), T([-1.0]), T([0.0]), T([0.0]), chosen_tokens=T([1]), rejected_tokens=T([1]), beta=0.25)
    close(out.losses, [0.0])
    pc = PC.clone().requires_grad_(True)
    ipo_loss(pc, PR, RC, RR, chosen_tokens=NC, rejected_tokens=NR, beta=0.5).losses.sum().backward()
    close(pc.grad, [-1 / 6, 2 * 0.25 / 4])  # pair 1: 2·(5/4 − 1)·(1/4) = 0.125


class Samples:
    def __init__(self, texts):
        self.texts = texts


def test_distinct_openings_by_hand():
    """Openings (first 3 words): 'red and sweet' twice, 'it is red', 'blue' → 3 distinct of 4 = 0.75."""
    assert distinct_openings(Samples(["red and sweet", "red and sweet indeed", "it is red", "blue"])) == 0.75
    assert distinct_openings(Samples(["a b c", "a b c"])) == 0.5
    assert distinct_openings(Samples([])) is None


@pytest.mark.slow
def test_matches_trl_dpo_trainer_loss_type_ipo():
    """TRL 1.16's DPOTrainer(loss_type="ipo") on the same tiny model, reference and token ids: its loss (per-token
    mean log-ratios) and its logged rewards equal ours, through alignkit's own collate and log-prob code."""
    trl = pytest.importorskip("trl")
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    from alignkit.data.collate import collate_pairs
    from alignkit.engine.logprobs import pair_logprobs
    from ipo_tiny import PAD, pair_rows, tiny_model, tiny_tokenizer

    rows = pair_rows(4, seed=3)
    policy, ref = tiny_model(0).train(), tiny_model(1)
    args = DPOConfig(output_dir="/tmp/alignkit-ipo-trl", beta=0.3, loss_type=["ipo"], report_to=[], use_cpu=True,
                     max_length=None, per_device_train_batch_size=4,
                     bf16=False)  # TRL's default bf16 autocast would patch the reference's forward into bf16
    trainer = DPOTrainer(model=policy, ref_model=ref, args=args, processing_class=tiny_tokenizer(),
                         train_dataset=Dataset.from_list([{"prompt": "w5", "chosen": " w6", "rejected": " w7"}]))
    batch = DataCollatorForPreference(pad_token_id=PAD)(
        [{"prompt_ids": r["prompt_input_ids"], "chosen_ids": r["chosen_input_ids"],
          "rejected_ids": r["rejected_input_ids"]} for r in rows])
    trl_loss = trainer._compute_loss(trainer.model, batch, return_outputs=False).item()
    trl_metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}

    ours = collate_pairs(rows, PAD)
    pol = pair_logprobs(policy, ours)
    with torch.no_grad():
        refo = pair_logprobs(ref, ours)
    out = ipo_loss(pol["chosen"], pol["rejected"], refo["chosen"], refo["rejected"],
                   chosen_tokens=pol["chosen_tokens"], rejected_tokens=pol["rejected_tokens"], beta=0.3)
    assert out.losses.mean().item() == pytest.approx(trl_loss, rel=1e-4)
    assert out.chosen_rewards.mean().item() == pytest.approx(trl_metrics["rewards/chosen"], rel=1e-4)
    assert out.rejected_rewards.mean().item() == pytest.approx(trl_metrics["rewards/rejected"], rel=1e-4)
    assert pol["chosen"].mean().item() == pytest.approx(trl_metrics["logps/chosen"], rel=1e-4)  # sums, as TRL
