"""Log-probs of the response tokens from the LM head: log softmax(logits)[label], with and without the temporaries.

    with hidden_out(model):                           # the model returns its final hidden states, not logits
        hidden = model(..., logits_to_keep=keep).logits  # (M, D) at the kept positions
    logps = head_logprobs(hidden, lm_head, at, labels)   # (N,) fp32, differentiable in hidden and the head

The shared-prompt forward (alignkit.engine.packing) needs, for each response token i, the log-prob of its label
under the logits of the position `at[i]` that predicts it: z[at[i], label[i]] − logsumexp(z[at[i]]). The plain
twin (`plain_logprobs`) takes the (M, V) logits the model returns and lets autograd do the rest: logsumexp builds
an (M, V) shifted copy, and its backward, with the indexing's, builds three more (M, V) buffers (the zeros the
picked logits scatter into, exp(z − lse), their sum) at the start of the backward, when every activation is alive.
On SmolLM2 (V = 49152) an online step's M ≈ 450 positions makes each such buffer 88 MB.

The fused path (`head_logprobs`) runs the LM head itself on the hidden states and does the same arithmetic in
place on the one (M, V) buffer the head's matmul writes: the label logits are gathered first, then the buffer
becomes softmax(z) (max, exp, sum: the steps torch.logsumexp takes) and is kept for the backward, which turns it
into the logits' gradient in place,

    dL/dz[m, v] = g_label(m, v) − (Σ_{i: at[i] = m} g_i) · softmax(z[m])_v

and hands it to the head's two backward matmuls (hidden: dz @ W, weight: dzᵀ @ h). Without gradients (reference
passes) the buffer only yields logsumexp and is freed. The numbers are the plain path's to float rounding
(tests/engine/test_head_logprobs.py: log-probs and gradients to 1e-5 in fp32).

Where it engages (`applies`): a plain fp32 nn.Linear head (OneDnnLinear included; its matmuls then run in oneDNN
in both directions) on a model whose forward applies the head to the sliced hidden states and returns its output
as the logits, untouched: no soft-capping (Gemma 2) or scaling (Cohere, Granite) after it. Other models, bf16
runs (bf16 weights, or bf16 autocast over fp32 ones), peft-wrapped heads and sharded weights (FSDP2, DeepSpeed
ZeRO-3) use the plain twin; so do --no-fused-head and the concatenated forward (--no-shared-prompt).
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import re
from collections.abc import Iterator
from typing import Any

import torch

from alignkit.engine.onednn_linear import OneDnnLinear, linear as onednn_linear


def plain_logprobs(logits: torch.Tensor, at: torch.Tensor, labels: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """The plain twin: logits (M, V) any dtype, at (N,) rows of logits, labels (N,) -> (N,) fp32 log-probs; the
    logsumexp in fp32 a chunk of rows at a time."""
    lse = torch.cat([torch.logsumexp(logits[s:s + chunk].float(), dim=-1)
                     for s in range(0, logits.shape[0], chunk)])  # (M,)
    return logits[at, labels].float() - lse[at]


def head_logprobs(hidden: torch.Tensor, head: torch.nn.Linear, at: torch.Tensor,
                  labels: torch.Tensor) -> torch.Tensor:
    """hidden (M, D) fp32 final hidden states, head the LM head (V, D), at (N,) rows of hidden, labels (N,) ->
    (N,) fp32 log-probs of the labels; differentiable in hidden and the head's parameters."""
    if torch.is_grad_enabled() and (hidden.requires_grad or any(p.requires_grad for p in head.parameters())):
        return _HeadLogprobs.apply(hidden, head.weight, head.bias, at, labels, head)
    with torch.no_grad():
        z = head(hidden)  # (M, V)
        picked = z[at, labels]  # (N,) before the buffer is overwritten
        return picked - _softmax_in_place(z)[at]


def applies(model: Any) -> bool:
    """Whether the fused path may run on this (unwrapped) transformers model: see the module docstring."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return (type(head) in (torch.nn.Linear, OneDnnLinear) and head.weight.dtype == torch.float32
            # bf16 autocast over fp32 master weights computes bf16 logits: the logits path keeps their fp32 lse
            and not torch.is_autocast_enabled(head.weight.device.type)
            # whole weights only: FSDP2's are DTensors, and ZeRO-3 gathers its own (ds_id) around module calls
            and type(head.weight.data) is torch.Tensor and not hasattr(head.weight, "ds_id")
            and _returns_head_output(type(model)))


@contextlib.contextmanager
def hidden_out(model: Any) -> Iterator[torch.nn.Linear]:
    """During the block the model's LM head passes its input through, so the forward's `.logits` are the final
    hidden states at the kept positions; yields the head. Whatever forward the head had is put back afterwards."""
    head = model.get_output_embeddings()
    had = "forward" in head.__dict__
    before = head.__dict__.get("forward")
    head.forward = _identity
    try:
        yield head
    finally:
        if had:
            head.forward = before
        else:
            del head.forward


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _softmax_in_place(z: torch.Tensor) -> torch.Tensor:
    """z (M, V) fp32 logits -> returns logsumexp (M,); z becomes softmax(z), in place (max, exp, sum, as
    torch.logsumexp computes it)."""
    top = z.amax(dim=-1, keepdim=True)  # (M, 1)
    top = torch.where(top.isfinite(), top, torch.zeros_like(top))  # torch.logsumexp's guard for ±inf rows
    z.sub_(top).exp_()
    total = z.sum(dim=-1, keepdim=True)  # (M, 1)
    z.div_(total)
    return (top + total.log()).squeeze(-1)


class _HeadLogprobs(torch.autograd.Function):
    """(hidden, weight, bias, at, labels, head) -> (N,) log-probs; the softmax is the only (M, V) buffer kept."""

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, at: torch.Tensor,
                labels: torch.Tensor, head: torch.nn.Linear) -> torch.Tensor:
        z = head(hidden)  # (M, V): the head's own kernel (autograd is off inside a Function's forward)
        picked = z[at, labels]  # (N,)
        lse = _softmax_in_place(z)  # z is now the softmax
        ctx.save_for_backward(hidden, weight, at, labels)
        ctx.probs, ctx.onednn = z, isinstance(head, OneDnnLinear)
        return picked - lse[at]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        hidden, weight, at, labels = ctx.saved_tensors
        dz, ctx.probs = ctx.probs, None  # (M, V) softmax, turned into the logits' gradient in place
        if dz is None:
            raise RuntimeError("the fused LM-head log-probs free their softmax in the backward: backward twice "
                               "(retain_graph) is not supported")
        per_row = torch.zeros(dz.shape[0], dtype=dz.dtype, device=dz.device).index_add_(0, at, grad)  # (M,)
        dz.mul_(-per_row[:, None])
        dz.index_put_((at, labels), grad.to(dz.dtype), accumulate=True)
        mm = _onednn_mm if ctx.onednn and dz.device.type == "cpu" else torch.mm
        d_hidden = mm(dz, weight) if ctx.needs_input_grad[0] else None  # (M, V) @ (V, D) -> (M, D)
        d_weight = mm(dz.t(), hidden) if ctx.needs_input_grad[1] else None  # (V, M) @ (M, D) -> (V, D)
        d_bias = dz.sum(0) if ctx.needs_input_grad[2] else None  # (V,); False for a head without bias
        return d_hidden, d_weight, d_bias, None, None, None


def _onednn_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (M, K) @ b (K, N) in oneDNN, as OneDnnLinear's own backward computes it."""
    return onednn_linear(a, b.t(), None)


@functools.lru_cache(maxsize=None)
def _returns_head_output(cls: type) -> bool:
    """Whether cls.forward assigns `logits = self.<head>(hidden_states)` once and never touches `logits` again
    before it returns (Llama, Qwen2, Mistral, GPT-2, SmolLM2: yes; Gemma 2's soft-capping, Cohere's and Granite's
    scaling: no)."""
    try:
        source = inspect.getsource(cls.forward)
    except (OSError, TypeError):
        return False
    lines = [line.split("#")[0].strip() for line in source.splitlines()]
    head_call = r"logits\s*=\s*self\.\w+\(\s*hidden_states\s*\)"
    assigned = [i for i, line in enumerate(lines) if re.fullmatch(head_call, line)]
    if len(assigned) != 1:
        return False
    # Later lines may only read it (the loss, the output record's `logits=logits,` keyword): no statement that
    # assigns or updates it, such as Gemma 2's `logits = logits / cap` or Cohere's `logits = logits * scale`.
    return not any(re.match(r"logits\s*[-+*/]?=(?!=)", line) and not line.endswith(",")
                   for line in lines[assigned[0] + 1:])
