"""H-DPO loss (torch imported here, not in the registering package)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from alignkit.registry import PairwiseLoss


def hdpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
              ref_rejected: torch.Tensor, *, chosen_tokens: torch.Tensor, rejected_tokens: torch.Tensor,
              beta: float = 0.1, alpha: float = 0.9) -> PairwiseLoss:
    """H-DPO: loss = −log σ(β(α Δ_θ − Δ_ref)); reward β(α log π_θ − log π_ref).

    It maximises E[r] + αβ H(π) − β CE(π, π_ref), whose optimum is π_ref^{1/α} · exp(r/(αβ)); α = 1 is DPO.
    Paper: Omura et al., "Entropy Controllable Direct Preference Optimization", arXiv 2411.07595v2.
    Intuition: scaling only the policy's margin by α < 1 rewards the policy for concentrating mass (lower
    entropy, sharper answers), and α > 1 for spreading it.
    """
    chosen_rewards = beta * (alpha * policy_chosen - ref_chosen)  # (B,)
    rejected_rewards = beta * (alpha * policy_rejected - ref_rejected)  # (B,)
    losses = -F.logsigmoid(chosen_rewards - rejected_rewards)
    return PairwiseLoss(losses, chosen_rewards.detach(), rejected_rewards.detach())
