"""Online QEMPO: the shaped return and the dual ascent on its multipliers (no torch import needed).

The problem: maximise H(π) subject to E_π[r] ≥ R (and, with --constraint kl, KL(π‖π_ref) ≤ K). Its Lagrangian
H(π) + λ(E_π[r] − R) − η(KL(π‖π_ref) − K) has the per-sample return

    G(y) = λ r(x, y) − log π_θ(y|x) − η (log π_θ(y|x) − log π_ref(y|x))

and the optimum π* ∝ π_ref^γ exp(r/β) with γ = η/(1 + η), β = (1 + η)/λ: the same closed form as the offline
loss, so `--online` with the same --tau, or --beta and --gamma, targets the same policy. Dividing G by λ gives
the issue's form r − τ log π_θ − β_KL (log π_θ − log π_ref) with τ = 1/λ and β_KL = η/λ. See
docs/algorithms/qempo.md.
"""
from __future__ import annotations

from typing import Any

from alignkit.errors import UserError


def init_state(options: Any) -> dict[str, float]:
    """λ and η at step 0 from the offline parameters: quality λ = 1/τ, η = 0; kl η = γ/(1−γ), λ = (1+η)/β."""
    if options.constraint == "quality":
        return {"lambda": 1.0 / options.tau, "eta": 0.0}
    if options.gamma >= 1.0:
        raise UserError("online qempo --constraint kl needs --gamma below 1: at 1 the entropy term vanishes "
                        "(that is KL-regularised RL, DPO's objective: train dpo --online)")
    eta = options.gamma / (1.0 - options.gamma)
    return {"lambda": (1.0 + eta) / options.beta, "eta": eta}


def returns(rewards: Any, policy_logps: Any, ref_logps: Any, state: dict[str, float], **options: Any) -> Any:
    """(N,) returns λ r − log π_θ − η (log π_θ − log π_ref) from (N,) rewards and detached log-probs."""
    shaped = state["lambda"] * rewards - policy_logps
    if ref_logps is not None and state["eta"] != 0.0:
        shaped = shaped - state["eta"] * (policy_logps - ref_logps)
    return shaped


def update(state: dict[str, float], stats: dict[str, Any], *, min_reward: float | None = None,
           max_kl: float | None = None, dual_lr: float = 5.0, **options: Any) -> dict[str, float]:
    """Dual ascent: raise λ while the batch's mean reward is below --min-reward, lower it while above (never
    below 0); raise η while the KL estimate is above --max-kl, lower it while below (never below 0)."""
    lam, eta = state["lambda"], state["eta"]
    if min_reward is not None:
        lam = max(0.0, lam + dual_lr * (min_reward - stats["reward"]))
    if max_kl is not None and stats.get("kl") is not None:
        eta = max(0.0, eta + dual_lr * (stats["kl"] - max_kl))
    return {"lambda": lam, "eta": eta}
