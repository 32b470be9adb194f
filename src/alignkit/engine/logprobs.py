"""Per-token and per-sequence log-probs over response tokens only, memory-lean.

By default each prompt is computed once for the responses that share it (alignkit.engine.packing); the plain path
is one forward pass over the concatenated batch (chosen rows then rejected rows, see data/collate.py). The fp32
log-softmax is never taken over the whole (2B, L, V) logits: only the positions that predict a response token are
gathered, and their log-softmax is computed in fp32 a chunk of positions at a time.
"""
from __future__ import annotations

from typing import Any

import torch

from alignkit.engine.packing import shared_prompt_logprobs, supports_shared_prompt

CHUNK = 1024  # positions per fp32 log-softmax chunk: peak extra memory is CHUNK × V floats


def gather_logprobs(logits: torch.Tensor, labels: torch.Tensor, chunk: int = CHUNK) -> torch.Tensor:
    """log softmax(logits)[label] per row: logits (N, V) any dtype, labels (N,) -> (N,) fp32, chunk rows at a time."""
    out = []
    for start in range(0, logits.shape[0], chunk):
        block = logits[start:start + chunk].float()  # (n, V) fp32, only this chunk
        picked = block.gather(-1, labels[start:start + chunk, None]).squeeze(-1)  # (n,)
        out.append(picked - torch.logsumexp(block, dim=-1))
    return torch.cat(out) if out else logits.new_zeros(0, dtype=torch.float32)


def response_logprobs(model: Any, batch: dict[str, torch.Tensor], chunk: int = CHUNK,
                      shared_prompt: bool = True, fused_head: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs of each row's response tokens, aligned at the response start.

    Returns (logps (R, T) fp32, mask (R, T) bool) with R = rows (2B), T = the longest response; logps is 0
    where mask is False. Token t of a response sits at position prompt_length + t and is predicted by the
    logits at position prompt_length + t − 1.

    shared_prompt: compute each prompt once for the rows that share it (alignkit.engine.packing) where the
    model allows; False, or a model that does not, runs this plain concatenated forward, the fast path's twin.
    fused_head: there, the log-probs straight from the LM head where alignkit.engine.head_logprobs applies; False
    takes them from the model's logits (its twin).
    """
    if shared_prompt and "groups" in batch and supports_shared_prompt(model):
        return shared_prompt_logprobs(model, batch, chunk, head=None if fused_head else "logits")
    input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]  # (R, L)
    prompt_lengths, response_lengths = batch["prompt_lengths"], batch["response_lengths"]  # (R,)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits  # (R, L, V)
    width = int(response_lengths.max())
    t = torch.arange(width, device=input_ids.device)  # (T,)
    mask = t[None, :] < response_lengths[:, None]  # (R, T)
    target_pos = (prompt_lengths[:, None] + t[None, :]).clamp(max=input_ids.shape[1] - 1)  # (R, T)
    rows = torch.arange(input_ids.shape[0], device=input_ids.device)[:, None].expand_as(mask)
    # Only response positions are gathered: (N, V) in the model's dtype, N = number of response tokens.
    picked = gather_logprobs(logits[rows[mask], target_pos[mask] - 1], input_ids[rows[mask], target_pos[mask]],
                             chunk)  # (N,)
    logps = torch.zeros(mask.shape, dtype=torch.float32, device=logits.device).masked_scatter(mask, picked)
    return logps, mask


def pair_masks(mask: torch.Tensor, transforms: list[tuple[Any, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a (2B, T) response mask into chosen / rejected (B, T) masks and apply the enabled transforms."""
    import dataclasses

    half = mask.shape[0] // 2
    chosen, rejected = mask[:half], mask[half:]
    for transform, options in transforms:
        chosen, rejected = transform.apply(chosen, rejected, **dataclasses.asdict(options))
    return chosen, rejected


def pair_logprobs(model: Any, batch: dict[str, torch.Tensor], transforms: list[tuple[Any, Any]] = (),
                  chunk: int = CHUNK, shared_prompt: bool = True, fused_head: bool = True) -> dict[str, torch.Tensor]:
    """Summed response log-probs per pair after transforms: chosen / rejected (B,) fp32, and the token counts
    chosen_tokens / rejected_tokens (B,) that the masks kept (what length-normalised objectives divide by)."""
    logps, mask = response_logprobs(model, batch, chunk, shared_prompt, fused_head)  # (2B, T)
    chosen_mask, rejected_mask = pair_masks(mask, list(transforms))  # (B, T) each
    half = logps.shape[0] // 2
    return {
        "chosen": (logps[:half] * chosen_mask).sum(-1),
        "rejected": (logps[half:] * rejected_mask).sum(-1),
        "chosen_tokens": chosen_mask.sum(-1),
        "rejected_tokens": rejected_mask.sum(-1),
    }
