"""Online QEMPO pieces worked out by hand: multipliers from the offline parameters, the shaped return, dual
ascent, group-normalised advantages, and the errors for options that make no sense."""
import math

import pytest
import torch

import alignkit_qempo
from alignkit_qempo import online
from alignkit.engine.online import group_advantages
from alignkit.errors import UserError

Options = alignkit_qempo.QEMPOOptions


def test_multipliers_start_from_the_offline_parameters():
    """quality τ = 0.1: λ = 1/τ = 10, η = 0. kl β = 0.1, γ = 0.5: η = γ/(1−γ) = 1, λ = (1+η)/β = 20, so that
    π* ∝ π_ref^{η/(1+η)} exp(λ r/(1+η)) = π_ref^0.5 exp(r/0.1), the offline kl closed form."""
    assert online.init_state(Options(constraint="quality", tau=0.1)) == pytest.approx({"lambda": 10.0, "eta": 0.0})
    assert online.init_state(Options(constraint="kl", beta=0.1, gamma=0.5)) == pytest.approx({"lambda": 20.0,
                                                                                            "eta": 1.0})
    state = online.init_state(Options(constraint="kl", beta=0.5, gamma=0.8))  # η = 4, λ = 10
    assert state == pytest.approx({"lambda": 10.0, "eta": 4.0})
    assert state["eta"] / (1 + state["eta"]) == pytest.approx(0.8)  # γ back
    assert (1 + state["eta"]) / state["lambda"] == pytest.approx(0.5)  # β back


def test_gamma_one_has_no_entropy_term_online():
    with pytest.raises(UserError, match="--gamma below 1"):
        online.init_state(Options(constraint="kl", gamma=1.0))


def test_shaped_return_by_hand():
    """λ = 2, η = 0.5; r = (1, 0); log π_θ = (−1, −3); log π_ref = (−2, −2):
    G = 2r − log π_θ − 0.5 (log π_θ − log π_ref) = (2 + 1 − 0.5, 0 + 3 + 0.5) = (2.5, 3.5)."""
    r, logp, ref = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, -3.0]), torch.tensor([-2.0, -2.0])
    state = {"lambda": 2.0, "eta": 0.5}
    assert online.returns(r, logp, ref, state).tolist() == pytest.approx([2.5, 3.5])
    # quality: no reference, η = 0: G = λ r − log π_θ = (3, 3)
    assert online.returns(r, logp, None, {"lambda": 2.0, "eta": 0.0}).tolist() == pytest.approx([3.0, 3.0])


def test_dual_ascent_moves_toward_the_targets_and_never_below_zero():
    state = {"lambda": 10.0, "eta": 1.0}
    # reward 0.1 below the target: λ rises by dual_lr · 0.1 = 0.5; KL 0.2 above the budget: η rises by 1.0
    up = online.update(state, {"reward": 0.75, "kl": 0.7}, min_reward=0.85, max_kl=0.5, dual_lr=5.0)
    assert up == pytest.approx({"lambda": 10.5, "eta": 2.0})
    down = online.update(state, {"reward": 0.95, "kl": 0.1}, min_reward=0.85, max_kl=0.5, dual_lr=5.0)
    assert down == pytest.approx({"lambda": 9.5, "eta": 0.0})  # η = max(0, 1 − 2)
    assert online.update({"lambda": 0.2, "eta": 0.0}, {"reward": 1.0, "kl": None}, min_reward=0.5,
                         dual_lr=5.0)["lambda"] == 0.0
    # no targets: the multipliers are fixed
    assert online.update(state, {"reward": 0.0, "kl": 9.0}) == state


def test_group_advantages_by_hand():
    """Groups of 2: (1, 3) has mean 2 and sample std √2 -> (−1/√2, 1/√2); (2, 2) has std 0 -> (0, 0)."""
    adv = group_advantages(torch.tensor([1.0, 3.0, 2.0, 2.0]), 2)
    assert adv.tolist() == pytest.approx([-1 / math.sqrt(2), 1 / math.sqrt(2), 0.0, 0.0], abs=1e-5)
    # groups of 3 are normalised separately: scaling one group's returns changes nothing
    a = group_advantages(torch.tensor([0.0, 1.0, 2.0, 0.0, 10.0, 20.0]), 3)
    assert a[:3].tolist() == pytest.approx(a[3:].tolist(), abs=1e-5)


def test_options_that_make_no_sense_are_refused():
    with pytest.raises(UserError, match="--max-kl needs --constraint kl"):
        Options(constraint="quality", max_kl=1.0)
    with pytest.raises(UserError, match="--dual-lr"):
        Options(dual_lr=-1.0)
