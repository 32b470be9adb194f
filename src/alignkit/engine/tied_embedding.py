"""A tied input embedding's gradient added row by row into the LM head's, never built as a dense (V, D) tensor.

    RowEmbeddingGrad.where_exact(policy, cfg, dist)   # before any other hook on the weight (StepInBackward's)
    loss.backward()                                    # weight.grad = LM head's gradient + the looked-up rows

A model whose input embedding and LM head share one weight (SmolLM2, Qwen2.5-0.5B, Llama-3.2-1B) gets that
weight's gradient from two places: the LM head's matmul and the embedding lookup. Autograd builds the lookup's as a
dense (V, D) tensor of zeros with the looked-up rows added in (embedding_dense_backward), then sums it with the LM
head's in another (V, D) buffer. Both are alive at the very end of the backward, when every other gradient is alive
too: the training step's peak. On SmolLM2-135M in fp32 that is 2 × 113 MB; on Qwen2.5-0.5B 2 × 545 MB.

Here the lookup gives autograd no gradient for the weight. Its backward keeps the (N, D) gradient of the looked-up
rows, and a post-accumulate-grad hook on the weight (it runs once the LM head's gradient is in .grad; the lookup's
node runs before it, since the weight is one of its inputs) adds those rows in place with index_add_, skipping the
embedding's padding_idx as nn.Embedding's backward does. The sum is the same, added in another order (1e-6 in
fp32). A backward in which the LM head gives the weight no gradient still gets the rows, added at the end of the
backward.

Where it engages: a plain nn.Embedding (no max_norm, scale_grad_by_freq or sparse; subclasses such as Gemma's
scaled embedding keep their own forward) whose weight is the LM head's and trains, unsharded: one process or DDP
(a tensor's post-accumulate-grad hooks run inside its AccumulateGrad node, before the node's own post hooks, where
DDP's reducer marks the gradient ready to average, so DDP averages the whole gradient), not FSDP2 or DeepSpeed,
which own the gradients. `--no-sparse-embedding-grad` runs the plain twin; tests/engine/test_tied_embedding.py
checks the two give the same gradients and weights, tests/engine/test_distributed.py that 2 DDP processes train
what one does.
"""
from __future__ import annotations

from typing import Any

import torch


class _Lookup(torch.autograd.Function):
    """F.embedding whose backward hands its row gradients to `rows` instead of returning a (V, D) gradient."""

    @staticmethod
    def forward(ctx: Any, ids: torch.Tensor, weight: torch.Tensor, rows: RowEmbeddingGrad) -> torch.Tensor:
        ctx.save_for_backward(ids)
        ctx.rows = rows
        return torch.nn.functional.embedding(ids, weight)  # (..., D)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[None, None, None]:
        (ids,) = ctx.saved_tensors
        ctx.rows.pending.append((ids.reshape(-1), grad_out.reshape(-1, grad_out.shape[-1])))  # (N,), (N, D)
        if len(ctx.rows.pending) == 1:  # rows the hook did not take (no LM head gradient) land at the end
            torch.autograd.Variable._execution_engine.queue_callback(ctx.rows.flush)
        return None, None, None


class _RowGradEmbedding(torch.nn.Embedding):
    """nn.Embedding whose lookup goes through _Lookup where RowEmbeddingGrad was installed on it. A deep copy of the
    model (a frozen start, a plugin's snapshot) gets None for the installation, so it looks up as a plain
    nn.Embedding with its own weight (a copied closure would have kept looking up the original's)."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = self.__dict__.get("_row_grad")
        if rows is None or not (torch.is_grad_enabled() and self.weight.requires_grad):
            return super().forward(ids)  # sampling, reference passes, copies: nothing to change
        return _Lookup.apply(ids, self.weight, rows)


class RowEmbeddingGrad:
    """Routes the lookup of `embedding` (tied to the LM head) through _Lookup and adds its rows into .grad."""

    def __init__(self, embedding: torch.nn.Embedding) -> None:
        self.embedding = embedding
        self.weight = embedding.weight
        self.pending: list[tuple[torch.Tensor, torch.Tensor]] = []  # this backward's (ids (N,), rows (N, D))
        self.weight.register_post_accumulate_grad_hook(lambda _: self.flush())
        embedding._row_grad = self
        embedding.__class__ = _RowGradEmbedding  # the same module, state dict and weight; another forward

    def __deepcopy__(self, memo: dict) -> None:
        return None  # a copied model's embedding is a plain lookup of its own weight (no hook was put on it)

    @classmethod
    def where_exact(cls, model: Any, cfg: Any, dist: Any) -> RowEmbeddingGrad | None:
        """Installed where the model's input embedding is a plain lookup of its trainable LM head's weight and the
        parameters are whole on every process (see the module docstring), else None."""
        if not cfg.sparse_embedding_grad or dist.sharded:
            return None
        embedding, head = model.get_input_embeddings(), model.get_output_embeddings()
        plain = (type(embedding) is torch.nn.Embedding and embedding.max_norm is None
                 and not embedding.scale_grad_by_freq and not embedding.sparse)
        tied = head is not None and getattr(head, "weight", None) is embedding.weight
        return cls(embedding) if plain and tied and embedding.weight.requires_grad else None

    def flush(self) -> None:
        """Add the pending rows into the weight's gradient (its LM head part already there, or none)."""
        pad = self.embedding.padding_idx
        while self.pending:
            ids, rows = self.pending.pop()
            if pad is not None:  # nn.Embedding gives its padding row no gradient
                keep = ids != pad
                ids, rows = ids[keep], rows[keep]
            if self.weight.grad is None:
                self.weight.grad = torch.zeros_like(self.weight)
            self.weight.grad.index_add_(0, ids, rows.to(self.weight.grad.dtype))
