"""IPO's pairwise loss: a pure function of (B,) sequence log-probs, as every alignkit objective is.

Torch is imported here, never in the registering module `alignkit_ipo`.
"""
from __future__ import annotations

import torch

from alignkit.registry import PairwiseLoss


def ipo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, *, chosen_tokens: torch.Tensor, rejected_tokens: torch.Tensor,
             beta: float = 0.1, normalize: str = "mean") -> PairwiseLoss:
    """IPO: loss = (h − 1/(2β))², h = (log π_θ(y_w) − log π_ref(y_w))/n_w − (log π_θ(y_l) − log π_ref(y_l))/n_l.

    n = the response's token count (EOS included; after --poet, the kept prefix) with normalize="mean", as TRL's
    DPOTrainer(loss_type="ipo") computes it and as the IPO authors ran their experiments (TRL's comment); n = 1 with
    normalize="sum", the paper's Eq. 17 on sequence log-probs as written. Rewards are TRL's: β(log π_θ − log π_ref),
    summed over the response.
    Paper: Azar et al., "A General Theoretical Paradigm to Understand Learning from Human Preferences",
    arXiv 2310.12036v2.
    Intuition: DPO's −log σ keeps pushing the margin up even when the preferences are deterministic, so the policy
    can drift arbitrarily far from the reference; IPO's squared loss has its minimum at a finite margin 1/(2β),
    which acts as the regulariser that DPO's β stops being on such data.
    """
    chosen_ratio = policy_chosen - ref_chosen  # (B,) log π_θ(y_w|x) − log π_ref(y_w|x)
    rejected_ratio = policy_rejected - ref_rejected  # (B,)
    if normalize == "mean":
        chosen_ratio = chosen_ratio / chosen_tokens.clamp(min=1).to(chosen_ratio.dtype)
        rejected_ratio = rejected_ratio / rejected_tokens.clamp(min=1).to(rejected_ratio.dtype)
    losses = (chosen_ratio - rejected_ratio - 1 / (2 * beta)) ** 2  # (B,)
    chosen_rewards = beta * (policy_chosen - ref_chosen).detach()
    rejected_rewards = beta * (policy_rejected - ref_rejected).detach()
    return PairwiseLoss(losses, chosen_rewards, rejected_rewards)
