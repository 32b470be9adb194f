"""Built-in pairwise losses (DPO, SimPO) of alignkit.builtins.objectives: pure functions of `(B,)` log-probs.

Every offline objective is the Bradley–Terry family of docs/algorithms: loss = −log σ(g(y_w) − g(y_l) − m) on an
implicit reward g. Each function returns `PairwiseLoss(losses (B,), chosen_rewards (B,), rejected_rewards (B,))`,
rewards detached. Torch is imported here, never in the registering module `alignkit.builtins.objectives`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from alignkit.registry import PairwiseLoss


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, *, chosen_tokens: torch.Tensor, rejected_tokens: torch.Tensor,
             beta: float = 0.1) -> PairwiseLoss:
    """Sigmoid DPO: loss = −log σ(β(Δ_θ − Δ_ref)), Δ = log π(y_w|x) − log π(y_l|x); reward β(log π_θ − log π_ref).

    Paper: Rafailov et al., "Direct Preference Optimization", arXiv 2305.18290v3.
    Intuition: raise the chosen response's log-ratio to the reference above the rejected one's, so the policy
    moves toward preferred answers while the reference keeps it from drifting (the optimum is π_ref·exp(r/β)).
    """
    chosen_rewards = beta * (policy_chosen - ref_chosen)  # (B,)
    rejected_rewards = beta * (policy_rejected - ref_rejected)  # (B,)
    losses = -F.logsigmoid(chosen_rewards - rejected_rewards)
    return PairwiseLoss(losses, chosen_rewards.detach(), rejected_rewards.detach())


def simpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor | None,
               ref_rejected: torch.Tensor | None, *, chosen_tokens: torch.Tensor, rejected_tokens: torch.Tensor,
               beta: float = 2.0, gamma: float = 1.0) -> PairwiseLoss:
    """SimPO: loss = −log σ(β/|y_w| · log π(y_w|x) − β/|y_l| · log π(y_l|x) − γ); reward β/|y| · log π(y|x).

    γ is the absolute target margin inside the sigmoid, as TRL's CPOTrainer(loss_type="simpo") uses `simpo_gamma`
    (the paper's γ/β ratio times β). |y| counts response tokens, EOS included (after POET, the kept prefix k).
    Paper: Meng et al., "SimPO: Simple Preference Optimization with a Reference-Free Reward", arXiv 2405.14734v3.
    Intuition: the average token log-prob is the reward the model actually uses when generating, so comparing
    averages with a margin aligns training with decoding and needs no reference model.
    """
    chosen_rewards = beta * policy_chosen / chosen_tokens.to(policy_chosen.dtype)  # (B,)
    rejected_rewards = beta * policy_rejected / rejected_tokens.to(policy_rejected.dtype)  # (B,)
    losses = -F.logsigmoid(chosen_rewards - rejected_rewards - gamma)
    return PairwiseLoss(losses, chosen_rewards.detach(), rejected_rewards.detach())
