"""Pairwise losses against numbers worked out by hand. −log σ(x) = log(1 + e^{−x}):
x = 1 → 0.313262, x = −1 → 1.313262, x = 0.5 → 0.474077, x = 2 → 0.126928, x = 1.75 → 0.160224, x = −2 → 2.126928.
Shapes are those the engine passes: (B,) log-prob sums and (B,) token counts.
"""
import pytest
import torch

from alignkit.builtins.losses import dpo_loss, simpo_loss
from alignkit_hdpo.loss import hdpo_loss
from alignkit_poet.mask import poet_masks
from alignkit_qempo import QEMPOOptions
from alignkit_qempo.loss import qempo_loss

T = torch.tensor
# Two pairs: policy chosen/rejected, reference chosen/rejected, token counts.
PC, PR, RC, RR = T([-2.0, -2.0]), T([-4.0, -6.0]), T([-3.0, -3.0]), T([-3.0, -4.0])
NC, NR = T([2, 4]), T([3, 2])


def registered(kind, name):
    """The record a plugin module registers through its hook (the same call the plugin loader makes)."""
    import alignkit_hdpo, alignkit_poet, alignkit_qempo
    import alignkit.builtins.objectives as builtin

    records = []
    for module in (builtin, alignkit_hdpo, alignkit_qempo, alignkit_poet):
        for hook in ("register_objectives", "register_transforms"):
            if hasattr(module, hook):
                getattr(module, hook)(register=records.append)
    return next(r for r in records if r.kind_name == kind and r.name == name)


def close(a, b):
    assert torch.allclose(a, T(b), atol=1e-5), (a, b)


def test_dpo_by_hand():
    """β = 0.5. Pair 0: Δθ = 2, Δref = 0, x = 0.5·2 = 1 → 0.313262; rewards 0.5·1 = 0.5, 0.5·(−1) = −0.5.
    Pair 1: Δθ = 4, Δref = 1, x = 0.5·3 = 1.5 → log(1+e^−1.5) = 0.201413; rewards 0.5, −1."""
    out = dpo_loss(PC, PR, RC, RR, chosen_tokens=NC, rejected_tokens=NR, beta=0.5)
    close(out.losses, [0.313262, 0.201413])
    close(out.chosen_rewards, [0.5, 0.5])
    close(out.rejected_rewards, [-0.5, -1.0])
    assert not out.chosen_rewards.requires_grad


def test_simpo_by_hand():
    """β = 2, γ = 1. Pair 0: means −2/2 = −1 and −4/3; x = 2·(−1) − 2·(−4/3) − 1 = −1/3 → 0.877070.
    Pair 1: means −2/4 = −0.5 and −6/2 = −3; x = −1 + 6 − 1 = 4 → log(1+e^−4) = 0.018150. Rewards β·mean."""
    out = simpo_loss(PC, PR, None, None, chosen_tokens=NC, rejected_tokens=NR, beta=2.0, gamma=1.0)
    close(out.losses, [0.873639, 0.018150])
    close(out.chosen_rewards, [-2.0, -1.0])
    close(out.rejected_rewards, [-8 / 3, -6.0])


def test_simpo_gamma_is_the_margin_inside_the_sigmoid():
    """Equal means (x = −γ): with γ = 2 the loss is −log σ(−2) = 2.126928, as TRL's simpo_gamma."""
    out = simpo_loss(T([-3.0]), T([-3.0]), None, None, chosen_tokens=T([3]), rejected_tokens=T([3]),
                     beta=2.0, gamma=2.0)
    close(out.losses, [2.126928])


def test_hdpo_by_hand_and_alpha_one_is_dpo():
    """β = 0.5, α = 0.5. Pair 0: x = 0.5(0.5·2 − 0) = 0.5 → 0.474077. Pair 1: x = 0.5(0.5·4 − 1) = 0.5 → 0.474077.
    Rewards β(α log π_θ − log π_ref): pair 0 chosen 0.5(−1 + 3) = 1, rejected 0.5(−2 + 3) = 0.5."""
    out = hdpo_loss(PC, PR, RC, RR, chosen_tokens=NC, rejected_tokens=NR, beta=0.5, alpha=0.5)
    close(out.losses, [0.474077, 0.474077])
    close(out.chosen_rewards[:1], [1.0])
    close(out.rejected_rewards[:1], [0.5])
    one = hdpo_loss(PC, PR, RC, RR, chosen_tokens=NC, rejected_tokens=NR, beta=0.5, alpha=1.0)
    dpo = dpo_loss(PC, PR, RC, RR, chosen_tokens=NC, rejected_tokens=NR, beta=0.5)
    assert torch.equal(one.losses, dpo.losses)


def test_qempo_quality_by_hand():
    """τ = 0.5, reference-free. Pair 0: x = 0.5·(−2 + 4) = 1 → 0.313262; pair 1: x = 0.5·4 = 2 → 0.126928.
    Length-normalised: pair 0 means −1, −4/3: x = 0.5/3 → log(1+e^−1/6) = 0.613282; pair 1 means −0.5, −3:
    x = 1.25 → 0.251929."""
    out = qempo_loss(PC, PR, None, None, chosen_tokens=NC, rejected_tokens=NR, constraint="quality", tau=0.5)
    close(out.losses, [0.313262, 0.126928])
    close(out.chosen_rewards, [-1.0, -1.0])
    norm = qempo_loss(PC, PR, None, None, chosen_tokens=NC, rejected_tokens=NR, constraint="quality", tau=0.5,
                      length_normalize=True)
    close(norm.losses, [0.613282, 0.251929])


def test_qempo_kl_by_hand_and_its_limits():
    """β = 0.5, γ = 0.5. Pair 1: Δθ = 4, Δref = 1: x = 0.5(4 − 0.5) = 1.75 → 0.160224. Pair 0: Δref = 0, x = 1.
    γ = 1 is DPO exactly; γ = 0 is the quality loss with τ = β."""
    out = qempo_loss(PC, PR, RC, RR, chosen_tokens=NC, rejected_tokens=NR, constraint="kl", beta=0.5, gamma=0.5)
    close(out.losses, [0.313262, 0.160224])
    g1 = qempo_loss(PC, PR, RC, RR, chosen_tokens=NC, rejected_tokens=NR, constraint="kl", beta=0.5, gamma=1.0)
    dpo = dpo_loss(PC, PR, RC, RR, chosen_tokens=NC, rejected_tokens=NR, beta=0.5)
    assert torch.allclose(g1.losses, dpo.losses)
    g0 = qempo_loss(PC, PR, RC, RR, chosen_tokens=NC, rejected_tokens=NR, constraint="kl", beta=0.5, gamma=0.0)
    q = qempo_loss(PC, PR, None, None, chosen_tokens=NC, rejected_tokens=NR, constraint="quality", tau=0.5)
    assert torch.allclose(g0.losses, q.losses)


def test_qempo_capabilities_follow_the_options():
    record = registered("objective", "qempo")
    assert record.requires_reference(QEMPOOptions(constraint="kl")) is True
    assert record.requires_reference(QEMPOOptions(constraint="quality")) is False
    assert record.requires_reference(QEMPOOptions(constraint="kl", gamma=0.0)) is False
    assert record.is_length_normalized(QEMPOOptions(length_normalize=True)) is True
    assert record.is_length_normalized(QEMPOOptions(constraint="kl", length_normalize=True)) is False
    from alignkit.errors import UserError
    with pytest.raises(UserError, match="gamma"):
        QEMPOOptions(gamma=1.5)


def test_poet_keeps_the_common_prefix_per_pair():
    """Pair 0: |y_w| = 3, |y_l| = 5 → k = 3 for both. Pair 1: |y_w| = 4, |y_l| = 2 → k = 2. Left padding too."""
    c = T([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]]).bool()
    r = T([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]).bool()
    kc, kr = poet_masks(c, r)
    assert kc.long().tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]]
    assert kr.long().tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]]
    left_c, left_r = poet_masks(T([[0, 0, 1, 1, 1]]).bool(), T([[1, 1, 1, 1, 1]]).bool())
    assert left_r.long().tolist() == [[1, 1, 1, 0, 0]] and left_c.long().tolist() == [[0, 0, 1, 1, 1]]


def test_poet_on_equal_lengths_changes_nothing():
    c = T([[1, 1, 1, 0], [1, 1, 1, 1]]).bool()
    r = T([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]]).bool()
    kc, kr = poet_masks(c, r)
    assert torch.equal(kc, c) and torch.equal(kr, r)


def test_simpo_with_poet_divides_both_sides_by_the_same_k():
    """Per-token chosen [−1, −2, −3], rejected [−1, −1, −1, −4, −5]; POET k = 3: sums −6 and −3, means −2 and −1.
    β = 2, γ = 0: x = 2·(−2) − 2·(−1) = −2 → 2.126928 (without POET the rejected mean is −12/5: x = 0.8)."""
    c_lp, r_lp = T([[-1.0, -2.0, -3.0, 0.0, 0.0]]), T([[-1.0, -1.0, -1.0, -4.0, -5.0]])
    kc, kr = poet_masks(T([[1, 1, 1, 0, 0]]).bool(), T([[1, 1, 1, 1, 1]]).bool())
    out = simpo_loss((c_lp * kc).sum(-1), (r_lp * kr).sum(-1), None, None, chosen_tokens=kc.sum(-1),
                     rejected_tokens=kr.sum(-1), beta=2.0, gamma=0.0)
    close(out.losses, [2.126928])


def test_objectives_and_transform_are_registered_with_papers():
    for name in ("dpo", "simpo", "hdpo", "qempo"):
        record = registered("objective", name)
        assert record.pairwise_loss is not None and record.paper.startswith("arXiv ")
    assert registered("objective", "simpo").requires_reference(None) is False
    assert not hasattr(registered("transform", "poet"), "composes_with")  # POET goes with any pairwise objective
