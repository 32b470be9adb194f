"""Built-in training objectives (dpo, simpo). Registered through the same hook contract as any plugin.

The loss functions live beside this module in `alignkit.builtins.losses` and are imported only when a loss is
computed, so that `alignkit --help` never imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alignkit import hookimpl
from alignkit.config import opt
from alignkit.registry import Objective, OnlineSpec


@dataclass
class DPOOptions:
    beta: float = opt(0.1, "Strength of the pull toward the reference (higher: stay closer).")


@dataclass
class SimPOOptions:
    beta: float = opt(2.0, "Scale of the length-normalised reward.")
    gamma: float = opt(1.0, "Target reward margin between chosen and rejected (TRL's simpo_gamma).")


def dpo(*args: Any, **kwargs: Any) -> Any:
    from alignkit.builtins.losses import dpo_loss

    return dpo_loss(*args, **kwargs)


def simpo(*args: Any, **kwargs: Any) -> Any:
    from alignkit.builtins.losses import simpo_loss

    return simpo_loss(*args, **kwargs)


def dpo_online_state(options: DPOOptions) -> dict[str, float]:
    """The reward multiplier λ = 1/β of DPO's objective, fixed (there is no constraint to track)."""
    return {"lambda": 1.0 / options.beta}


def dpo_online_returns(rewards: Any, policy_logps: Any, ref_logps: Any, state: dict[str, float],
                       **options: Any) -> Any:
    """(N,) returns λ r − (log π_θ − log π_ref): DPO's objective E[r] − β KL(π‖π_ref), divided by β.

    Its maximiser is π_ref exp(r/β) / Z, the policy DPO fits from pairs; online, the KL-shaped return makes it
    KL-regularised policy gradient (RLHF). It has no entropy term: that is what QEMPO adds."""
    return state["lambda"] * rewards - (policy_logps - ref_logps)


# Docstrings (formula, paper, intuition) are the loss functions'; the lazy wrappers show the same text.
dpo.__doc__ = "Sigmoid DPO −log σ(β(Δ_θ − Δ_ref)); arXiv 2305.18290v3 (see alignkit.builtins.losses.dpo_loss)."
simpo.__doc__ = ("SimPO −log σ(β/|y_w|·log π(y_w) − β/|y_l|·log π(y_l) − γ); arXiv 2405.14734v3 "
                 "(see alignkit.builtins.losses.simpo_loss).")


@hookimpl
def register_objectives(register):
    register(Objective(
        name="dpo", help="Direct Preference Optimization (sigmoid loss against a frozen reference; --online: its "
        "objective reward − β KL by policy gradient).",
        options=DPOOptions, pairwise_loss=dpo, needs_reference=True, paper="arXiv 2305.18290v3",
        # --online: the same objective, E[r] − β KL, by policy gradient on sampled completions (RLHF)
        online=OnlineSpec(init_state=dpo_online_state, returns=dpo_online_returns)))
    register(Objective(
        name="simpo", help="SimPO: reference-free, length-normalised reward with a target margin.",
        options=SimPOOptions, pairwise_loss=simpo, needs_reference=False, length_normalized=True,
        paper="arXiv 2405.14734v3"))
