"""alignkit plugin: poet — Prefix-Oriented Equal-length Training (arXiv 2506.09457v3), as a mask transform.

Paper: Xiao et al., "Towards Bridging the Reward-Generation Gap in Direct Alignment Algorithms";
POET is the method's name, not the paper's title.

`alignkit train dpo --poet`: each pair keeps only the first min(|y_w|, |y_l|) response tokens of both responses,
for policy and reference alike; the objective is unchanged. Torch is imported lazily.
"""
from __future__ import annotations

from typing import Any

from alignkit import hookimpl
from alignkit.registry import Transform


def poet(chosen_mask: Any, rejected_mask: Any) -> Any:
    """Truncate both responses of each pair to their common length k (see alignkit_poet.mask.poet_masks)."""
    from alignkit_poet.mask import poet_masks

    return poet_masks(chosen_mask, rejected_mask)


@hookimpl
def register_transforms(register):
    register(Transform(
        name="poet", help="POET: train on the first min(|chosen|, |rejected|) tokens of both responses.",
        apply=poet, paper="arXiv 2506.09457v3"))
