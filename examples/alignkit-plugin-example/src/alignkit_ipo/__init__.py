"""alignkit plugin: ipo — Identity Preference Optimisation (Azar et al., arXiv 2310.12036v2), and a metric.

    pip install ./examples/alignkit-plugin-example
    alignkit train ipo --beta 0.1 --poet

Everything goes through alignkit's public hook contract (alignkit.hookspecs): `register_objectives` adds the `ipo`
subcommand of `alignkit train`, whose flags come from `IPOOptions`; `register_metrics` adds `distinct-openings` to
`alignkit eval`. Torch is imported only inside the loss module, so `alignkit --help` stays fast.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alignkit import hookimpl
from alignkit.config import opt
from alignkit.registry import Metric, Objective

OPENING_WORDS = 3


@dataclass
class IPOOptions:
    beta: float = opt(0.1, "IPO's τ: the squared loss pulls the log-ratio margin to 1/(2β) (higher: smaller "
                      "margin, closer to the reference).")
    normalize: str = opt("mean", "mean: per-token mean log-ratios, as TRL and the IPO authors' experiments; sum: "
                         "sequence sums, the paper's equation as written.", choices=("mean", "sum"))


def ipo(*args: Any, **kwargs: Any) -> Any:
    """IPO (Δ − 1/(2β))², Δ the (mean or summed) log-ratio margin; arXiv 2310.12036v2 (alignkit_ipo.loss)."""
    from alignkit_ipo.loss import ipo_loss

    return ipo_loss(*args, **kwargs)


def distinct_openings(samples: Any) -> float | None:
    """Distinct openings (first 3 words) / samples of one prompt: 1 when no two samples start alike, 1/k when all
    k do. Mode collapse often shows first in how answers begin ("Certainly! Here is ...")."""
    if not samples.texts:
        return None
    openings = {tuple(text.split()[:OPENING_WORDS]) for text in samples.texts}
    return len(openings) / len(samples.texts)


@hookimpl
def register_objectives(register):
    register(Objective(
        name="ipo", help="IPO: squared loss pulling the log-ratio margin to 1/(2β) (does not saturate like DPO).",
        options=IPOOptions, pairwise_loss=ipo, needs_reference=True, paper="arXiv 2310.12036v2",
        # logps/* are logged as sequence sums, as TRL's DPOTrainer(loss_type="ipo") logs them: the
        # length_normalized capability only tells the engine to log means, so it stays False even for "mean".
        length_normalized=False))


@hookimpl
def register_metrics(register):
    register(Metric(name="distinct-openings", help=f"Distinct openings (first {OPENING_WORDS} words) / samples "
                    "per prompt.", kind="diversity", higher_is_better=True, compute=distinct_openings))
