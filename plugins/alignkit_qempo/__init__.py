"""alignkit plugin: qempo — quality-constrained entropy maximisation (arXiv 2602.15894v2), offline and online.

`alignkit train qempo --constraint quality --tau 0.1`, `alignkit train qempo --constraint kl --gamma 0.5`, or
online: `alignkit train qempo --online --reward toy --min-reward 0.85`. The closed forms are derived
(docs/algorithms/qempo.md). Torch is imported lazily.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alignkit import hookimpl
from alignkit.config import check_ranges, opt
from alignkit.errors import UserError
from alignkit.registry import Objective, OnlineSpec
from alignkit_qempo import online


@dataclass
class QEMPOOptions:
    constraint: str = opt("quality", "quality: max entropy subject to a reward floor (reference-free); "
                          "kl: also stay within a KL budget of the reference.", choices=("quality", "kl"))
    # τ and β default to 1: toy:prefs is labelled by Bradley–Terry at scale 10, so its implied reward is 10·r and
    # π* ∝ π_ref^γ exp(10 r) is a moderate target; at 0.1 (DPO's usual β) it is exp(100 r), all mass on the few
    # best answers, and offline training over-optimises (docs/algorithms/qempo.md). Real data: tune from 0.1 up.
    tau: float = opt(1.0, "quality: temperature 1/λ of π* ∝ exp(r/τ) (lower: higher quality floor, lower entropy).",
                     above=0)
    length_normalize: bool = opt(False, "quality: compare mean token log-probs instead of sums.")
    beta: float = opt(1.0, "kl: reward scale β of π* ∝ π_ref^γ exp(r/β).", above=0)
    gamma: float = opt(0.5, "kl: weight of the reference in [0, 1] (1: DPO, 0: the quality loss with τ = β).",
                       min=0, max=1)
    min_reward: float | None = opt(None, "online: target mean reward R; λ = 1/τ moves by dual ascent so the "
                                   "batch mean reward tracks R.", mode="online")
    max_kl: float | None = opt(None, "online, kl: KL budget K in nats; the KL multiplier η moves by dual ascent.",
                               mode="online", above=0)
    dual_lr: float = opt(5.0, "online: dual ascent step (λ per unit of reward gap, η per nat of KL gap).",
                         mode="online", min=0)

    def __post_init__(self) -> None:
        check_ranges(self)  # for options made in Python; the CLI and YAML checked the same before
        if self.max_kl is not None and self.constraint != "kl":
            raise UserError("qempo --max-kl needs --constraint kl")


def qempo(*args: Any, **kwargs: Any) -> Any:
    """QEMPO offline loss; arXiv 2602.15894v2 (see alignkit_qempo.loss.qempo_loss)."""
    from alignkit_qempo.loss import qempo_loss

    return qempo_loss(*args, **kwargs)


@hookimpl
def register_objectives(register):
    register(Objective(
        name="qempo", help="QEMPO: as diverse as possible subject to a quality floor (--constraint quality|kl).",
        options=QEMPOOptions, pairwise_loss=qempo,
        online=OnlineSpec(init_state=online.init_state, returns=online.returns, update=online.update),
        # The quality constraint is reference-free; the KL constraint needs the reference (unless γ = 0 and
        # no --max-kl can make the KL multiplier grow).
        needs_reference=lambda o: o.constraint == "kl" and (o.gamma > 0 or o.max_kl is not None),
        length_normalized=lambda o: o.constraint == "quality" and o.length_normalize,
        paper="arXiv 2602.15894v2"))
