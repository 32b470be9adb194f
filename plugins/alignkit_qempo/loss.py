"""QEMPO offline losses (torch imported here, not in the registering package). See docs/algorithms/qempo.md."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from alignkit.registry import PairwiseLoss


def qempo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor | None,
               ref_rejected: torch.Tensor | None, *, chosen_tokens: torch.Tensor, rejected_tokens: torch.Tensor,
               constraint: str = "quality", tau: float = 0.1, length_normalize: bool = False,
               beta: float = 0.1, gamma: float = 0.5) -> PairwiseLoss:
    """QEMPO, offline (derived): Bradley–Terry on the implicit reward of the maximum-entropy optimum.

    constraint="quality": max H(π) s.t. E_π[r] ≥ R gives π* ∝ exp(r/τ); loss = −log σ(τ Δ_θ), reward τ log π_θ(y),
        reference-free; with length_normalize, log π(y) is replaced by its mean over response tokens.
    constraint="kl": adding KL(π‖π_ref) ≤ K gives π* ∝ π_ref^γ exp(r/β); loss = −log σ(β(Δ_θ − γ Δ_ref)),
        reward β(log π_θ − γ log π_ref). γ = 1 is DPO, γ = 0 is the quality loss with τ = β.
    Paper: "Quality-constrained Entropy Maximization Policy Optimization for LLM Diversity", arXiv 2602.15894v2 (closed forms
    derived here from its stated problem; see docs/algorithms/qempo.md).
    Intuition: among the policies that are good enough, prefer the one spreading its mass the widest, so the
    reward only needs to separate acceptable from unacceptable answers, not pick one favourite.
    """
    if constraint == "quality":
        if length_normalize:
            policy_chosen = policy_chosen / chosen_tokens.to(policy_chosen.dtype)
            policy_rejected = policy_rejected / rejected_tokens.to(policy_rejected.dtype)
        chosen_rewards = tau * policy_chosen  # (B,)
        rejected_rewards = tau * policy_rejected  # (B,)
    elif constraint == "kl":
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"qempo --gamma must lie in [0, 1], got {gamma}")
        chosen_rewards = beta * (policy_chosen - gamma * ref_chosen)
        rejected_rewards = beta * (policy_rejected - gamma * ref_rejected)
    else:
        raise ValueError(f"qempo --constraint must be quality or kl, got {constraint!r}")
    losses = -F.logsigmoid(chosen_rewards - rejected_rewards)
    return PairwiseLoss(losses, chosen_rewards.detach(), rejected_rewards.detach())
