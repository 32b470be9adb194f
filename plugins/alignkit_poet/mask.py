"""POET mask (torch imported here, not in the registering package)."""
from __future__ import annotations

import torch


def poet_masks(chosen_mask: torch.Tensor, rejected_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the first k = min(|y_w|, |y_l|) response tokens (EOS counted) of both responses, per pair.

    chosen_mask (B, Tc) bool, rejected_mask (B, Tr) bool -> masks of the same shapes. A token is kept when it
    is in the original mask and at most k mask tokens precede-or-include it, so any padding side works.
    Paper: Xiao et al., "Towards Bridging the Reward-Generation Gap in Direct Alignment Algorithms",
    arXiv 2506.09457v3 (POET is the method's name).
    """
    k = torch.minimum(chosen_mask.sum(-1), rejected_mask.sum(-1)).unsqueeze(-1)  # (B, 1)
    keep_chosen = chosen_mask & (chosen_mask.long().cumsum(-1) <= k)
    keep_rejected = rejected_mask & (rejected_mask.long().cumsum(-1) <= k)
    return keep_chosen, keep_rejected
