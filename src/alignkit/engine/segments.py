"""The packed row: the shared-prompt layout's position-wise work on real tokens only, its attention as before.

The shared-prompt forward (alignkit.engine.packing) lays each prompt out with its responses after it, a row per
prompt padded to the longest. Every linear layer, norm and the LM head then also runs on the pads: online samples
end at their own EOS and preference data mixes short and long pairs (11% of the positions were pads in the online
benchmark's steps), and on a CPU a pad costs the matmuls a token costs. The packed layout feeds the model one row
of the real tokens, back to back, and only attention sees the padded rows:

    model input     (1, N)              the real tokens of every block, N = Σ block sizes
    q, k, v         (1, h, N, d)   ->   (G, h, W, d)   scattered into the padded rows (zeros at pads)
    attention       sdpa with the rows layout's (G, 1, W, W) block mask, one call
    output          (G, W, h, d)   ->   (1, N, h, d)   gathered back

A token's attention thus reads the same keys under the same mask in the same kernel call shape as in the padded
rows (the pads' keys are masked out either way), and every other operation works row by row: the log-probs are
the padded rows' bit for bit (tests/engine/test_segments.py), with the pads' matmuls left out.

The blocks travel to the attention function as a keyword argument, which transformers' models hand on from their
forward to every attention call (as they do flash-attention's varlen lengths); `segment_forward` selects this
module's attention function by name for the duration of the call and puts the model's own back afterwards. A
model whose attention does not receive the keyword (a forward of its own that drops keyword arguments) would run
sdpa on the placeholder mask, NaN everywhere, and the call count shows it: segment_forward returns None, the
caller computes the padded rows instead, and the model class is remembered.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Iterator
from typing import Any

import torch

NAME = "alignkit_segments"  # the attention implementation's name in transformers' AttentionInterface
KEYWORD = "alignkit_segments"  # the forward keyword that carries the blocks to every attention call
WRAPS = ("sdpa",)  # implementations this one runs on the padded rows (eager's function is each model's own)
_unsupported: set[type] = set()  # model classes whose attention did not receive the blocks


@dataclasses.dataclass
class Segments:
    """Where the packed row's tokens sit in the padded rows: index (N,) into the flattened (G·W) positions, in
    row-major order; mask the rows' (G, 1, W, W) attention mask. `calls` counts the attention calls that used it."""

    index: torch.Tensor
    rows: int
    width: int
    mask: torch.Tensor
    calls: int = 0

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """(1, h, N, d) -> (G, h, W, d), zeros at the pads."""
        tokens = x[0].transpose(0, 1)  # (N, h, d)
        padded = tokens.new_zeros((self.rows * self.width, *tokens.shape[1:])).index_copy(0, self.index, tokens)
        return padded.view(self.rows, self.width, *tokens.shape[1:]).transpose(1, 2)

    def pack(self, out: torch.Tensor) -> torch.Tensor:
        """(G, W, h, d) -> (1, N, h, d), the real positions only."""
        return out.reshape(self.rows * self.width, *out.shape[2:])[self.index][None]


def supports(model: Any) -> bool:
    """Whether segment_forward may be tried on this (unwrapped) transformers model: an implementation it wraps, and
    no gradient checkpointing (a recomputation in the backward would run outside segment_forward's call)."""
    config = getattr(model, "config", None)
    checkpointing = (model.is_activation_checkpointing if hasattr(type(model), "is_activation_checkpointing")
                     else getattr(model, "is_gradient_checkpointing", False))  # the name before transformers 5.x
    return (getattr(config, "_attn_implementation", None) in WRAPS and type(model) not in _unsupported
            and not checkpointing)


def segment_forward(call: Any, model: Any, segments: Segments) -> Any:
    """`call(attention_mask=placeholder, alignkit_segments=segments)` with this module's attention
    selected on `model` (the unwrapped transformers model that `call` runs); its output, or None where the model's
    attention layers did not all use the blocks (then nothing of the output may be used)."""
    _register()
    n = segments.index.shape[0]
    placeholder = torch.full((1, 1, 1, 1), float("nan"), dtype=next(model.parameters()).dtype,
                             device=segments.mask.device).expand(1, 1, n, n)  # no memory: a stride-0 view
    with _implementation(model.config, NAME):
        out = call(attention_mask=placeholder, **{KEYWORD: segments})
    if segments.calls != getattr(model.config, "num_hidden_layers", None):
        _unsupported.add(type(model))
        return None
    return out


def attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
              attention_mask: torch.Tensor | None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """An attention function for transformers' AttentionInterface: query (1, h, N, d), key and value
    (1, h_kv, N, d) -> (1, N, h, d), sdpa over the padded rows. Without blocks it is plain sdpa."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    segments = kwargs.pop(KEYWORD, None)
    if segments is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    segments.calls += 1
    out, _ = sdpa_attention_forward(module, segments.unpack(query), segments.unpack(key), segments.unpack(value),
                                    segments.mask, **kwargs)  # (G, W, h, d)
    return segments.pack(out), None


@functools.cache
def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, attention)


@contextlib.contextmanager
def _implementation(config: Any, name: str) -> Iterator[None]:
    before = config._attn_implementation
    config._attn_implementation = name
    try:
        yield
    finally:
        config._attn_implementation = before
