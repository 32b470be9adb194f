"""Next-token distribution helpers that decoders share, and the plain sampler: a public module of the engine.

Every function maps `(B, V)` log-probs (or logits) to `(B, V)` log-probs renormalised on their support, `-inf`
outside it, in the order transformers applies them (temperature, then top-k, top-p, min-p). A decoder plugin
(`alignkit decode --<name>`) builds its `step` from these, as conformative decoding does
(plugins/alignkit_conformative/decoder.py):

    from alignkit.engine.distributions import apply_temperature, renormalize, support

    def step(self, logits, settings):                       # logits: role -> (B, V)
        logprobs = apply_temperature(logits["policy"], settings.temperature)
        if not truncates(settings):  # the support is every finite log-prob: masking the rest changes nothing
            return renormalize(logprobs)
        return renormalize(logprobs.masked_fill(~support(logprobs, settings), float("-inf")))

`SampleDecoder` is exactly that: the `sample` decoder, and what online training samples with.
"""
from __future__ import annotations

import math
from typing import Any

import torch


def renormalize(logprobs: torch.Tensor) -> torch.Tensor:
    """(B, V) log-weights (-inf allowed) -> log-probs that sum to one over each row's finite entries."""
    return logprobs - logprobs.logsumexp(dim=-1, keepdim=True)


def apply_temperature(logits: Any, temperature: float) -> Any:
    """(B, V) logits -> (B, V) log-probs of softmax(logits / T). T = 0 means greedy (all mass on the argmax)."""
    logits = logits.float()
    if temperature <= 0:
        greedy = torch.full_like(logits, float("-inf"))
        return greedy.scatter(-1, logits.argmax(dim=-1, keepdim=True), 0.0)
    # dividing by 1 changes no bit: skip the (B, V) pass
    return torch.log_softmax(logits / temperature if temperature != 1 else logits, dim=-1)


def top_k_filter(logprobs: Any, k: int) -> Any:
    """Keep each row's k most likely tokens (k <= 0: off). Ties at the k-th value are all kept."""
    if k <= 0 or k >= logprobs.shape[-1]:
        return logprobs
    kth = logprobs.topk(k, dim=-1).values[..., -1:]  # (B, 1) the k-th largest log-prob
    return renormalize(logprobs.masked_fill(logprobs < kth, float("-inf")))


def top_p_filter(logprobs: Any, p: float) -> Any:
    """Nucleus: keep the smallest set of most likely tokens whose probability reaches p (p >= 1: off)."""
    if p >= 1.0:
        return logprobs
    sorted_lp, order = logprobs.sort(dim=-1, descending=True)  # (B, V)
    mass_before = sorted_lp.exp().cumsum(dim=-1) - sorted_lp.exp()  # probability of strictly likelier tokens
    drop_sorted = mass_before >= p  # the top token has mass_before = 0 and is always kept
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return renormalize(logprobs.masked_fill(drop, float("-inf")))


def min_p_filter(logprobs: Any, min_p: float) -> Any:
    """Keep tokens whose probability is at least min_p times the row's top probability (min_p <= 0: off)."""
    if min_p <= 0:
        return logprobs
    threshold = logprobs.max(dim=-1, keepdim=True).values + math.log(min_p)  # (B, 1)
    return renormalize(logprobs.masked_fill(logprobs < threshold, float("-inf")))


def truncate(logprobs: Any, settings: Any) -> Any:
    """top-k, then top-p, then min-p (each on the renormalised result of the previous), as in transformers."""
    logprobs = top_k_filter(logprobs, settings.top_k)
    logprobs = top_p_filter(logprobs, settings.top_p)
    return min_p_filter(logprobs, settings.min_p)


def support(logprobs: Any, settings: Any) -> Any:
    """(B, V) bool: the tokens that survive `truncate`. Decoders mask with it and renormalise once."""
    return truncate(logprobs, settings).isfinite()


def truncates(settings: Any) -> bool:
    """Whether `truncate` can drop a token under these settings (top-k, top-p or min-p on)."""
    return 0 < settings.top_k or settings.top_p < 1.0 or settings.min_p > 0


class SampleDecoder:
    """Plain sampling from the policy: softmax(logits / T), truncated. Needs no other model."""

    extra_models: dict[str, str] = {}

    def step(self, logits: dict[str, Any], settings: Any) -> Any:
        # (B, V) policy logits -> (B, V) log-probs of the distribution to sample from. Masking the untruncated
        # log-probs and renormalising once is what conformative decoding does at w = 0, bit for bit.
        logprobs = apply_temperature(logits["policy"], settings.temperature)
        if not truncates(settings):  # the support is every finite log-prob: masking the rest changes nothing
            return renormalize(logprobs)
        return renormalize(logprobs.masked_fill(~support(logprobs, settings), float("-inf")))
