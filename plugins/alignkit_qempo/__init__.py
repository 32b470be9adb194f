"""alignkit plugin: qempo — quality-constrained entropy maximisation (arXiv 2602.15894v1), offline losses.

`alignkit train qempo --constraint quality --tau 0.1` or `alignkit train qempo --constraint kl --gamma 0.5`.
The closed forms are derived (docs/algorithms/qempo.md). Torch is imported lazily.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alignkit import hookimpl
from alignkit.config import opt
from alignkit.errors import UserError
from alignkit.registry import Objective


@dataclass
class QEMPOOptions:
    constraint: str = opt("quality", "quality: max entropy subject to a reward floor (reference-free); "
                          "kl: also stay within a KL budget of the reference.", choices=("quality", "kl"))
    tau: float = opt(0.1, "quality: temperature 1/λ of π* ∝ exp(r/τ) (lower: higher quality floor, lower entropy).")
    length_normalize: bool = opt(False, "quality: compare mean token log-probs instead of sums.")
    beta: float = opt(0.1, "kl: reward scale β of π* ∝ π_ref^γ exp(r/β).")
    gamma: float = opt(0.5, "kl: weight of the reference in [0, 1] (1: DPO, 0: the quality loss with τ = β).")

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma <= 1.0:
            raise UserError(f"qempo --gamma must lie in [0, 1], got {self.gamma}")
        if self.tau <= 0 or self.beta <= 0:
            raise UserError("qempo --tau and --beta must be positive")


def qempo(*args: Any, **kwargs: Any) -> Any:
    """QEMPO offline loss; arXiv 2602.15894v1 (see alignkit_qempo.loss.qempo_loss)."""
    from alignkit_qempo.loss import qempo_loss

    return qempo_loss(*args, **kwargs)


@hookimpl
def register_objectives(register):
    register(Objective(
        name="qempo", help="QEMPO: as diverse as possible subject to a quality floor (--constraint quality|kl).",
        options=QEMPOOptions, pairwise_loss=qempo,
        # The quality constraint is reference-free; the KL constraint needs the reference (unless γ = 0).
        needs_reference=lambda o: o.constraint == "kl" and o.gamma > 0,
        length_normalized=lambda o: o.constraint == "quality" and o.length_normalize,
        paper="arXiv 2602.15894v1"))
