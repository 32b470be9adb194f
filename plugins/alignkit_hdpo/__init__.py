"""alignkit plugin: hdpo — H-DPO, DPO with a controllable entropy term (arXiv 2411.07595v2).

`alignkit train hdpo --alpha 0.8`. Registers through the public hook contract only; torch is imported lazily.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alignkit import hookimpl
from alignkit.config import opt
from alignkit.registry import Objective


@dataclass
class HDPOOptions:
    beta: float = opt(0.1, "Strength of the pull toward the reference, as in DPO.", above=0)
    alpha: float = opt(0.9, "Entropy coefficient: 1 is DPO, below 1 sharpens (lower entropy), above 1 spreads.",
                       above=0)


def hdpo(*args: Any, **kwargs: Any) -> Any:
    """H-DPO −log σ(β(αΔ_θ − Δ_ref)); arXiv 2411.07595v2 (see alignkit_hdpo.loss.hdpo_loss)."""
    from alignkit_hdpo.loss import hdpo_loss

    return hdpo_loss(*args, **kwargs)


@hookimpl
def register_objectives(register):
    register(Objective(
        name="hdpo", help="H-DPO: DPO with an entropy knob alpha (alpha < 1 sharpens, 1 is DPO).",
        options=HDPOOptions, pairwise_loss=hdpo, needs_reference=True, paper="arXiv 2411.07595v2"))
