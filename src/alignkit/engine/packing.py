"""The shared-prompt forward: each prompt computed once, the responses that share it laid out after it.

    one row per prompt:  [ prompt (P) | response 1 (n1) | response 2 (n2) | … | pad ]
    position ids:          0 … P-1      P … P+n1-1        P … P+n2-1            0
    a response token sees its prompt and the earlier tokens of its own response, never another response

A preference pair is a prompt with two responses (chosen, rejected); an online group is a prompt with its G
samples. The concatenated forward (alignkit.engine.logprobs.response_logprobs, TRL's layout) computes the prompt
once per response and pads every row to the longest; this one computes it once per prompt, pads per prompt, and
runs the LM head only at the positions that predict a response token (the prompt's last token predicts the first
token of every response), so an (M, V) block of logits replaces (R, L, V).

On a CPU (PACKED_DEVICES) the model is fed the same rows with their pads taken out, one row of real tokens, and
only attention sees the padded rows (alignkit.engine.segments): the same log-probs bit for bit, without the pads'
matmuls.

The result is exactly what the concatenated forward returns, (logps (R, T), mask (R, T)) over the batch's rows;
that path stays as the plain twin (`--no-shared-prompt`), and tests/engine/test_packing.py checks the two agree
to 1e-5 in fp32. Models whose attention takes no custom 4D mask (flash-attention, flex) use the plain path.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
from typing import Any

import torch

from alignkit.engine import head_logprobs
from alignkit.engine.models import unwrap_model
from alignkit.engine.segments import Segments, segment_forward, supports

MASKS = ("sdpa", "eager")  # attention implementations that read a custom (G, 1, L, L) mask as it is given
# Devices where the packed row is the default: on a CPU a pad position costs the matmuls a token costs. On a GPU
# the rows stay the default until a GPU benchmark has measured the packed row there (benchmarks/gpu.sh).
PACKED_DEVICES = ("cpu",)
# Below this hidden size the pads' matmuls cost less than the packed row's bookkeeping in every layer: an online
# batch of the toy model (hidden 64, 8 prompts x 8 samples) took 6.1 ms forward and backward in rows against 6.6
# packed, one of SmolLM2 (576) 2.17 against 2.12 s (machine F). Only those two sizes were measured.
PACKED_MIN_HIDDEN = 256


def supports_shared_prompt(model: Any) -> bool:
    """Whether the model's attention takes a custom 4D mask (the layout's only requirement)."""
    config = getattr(unwrap_model(model), "config", None)
    return getattr(config, "_attn_implementation", None) in MASKS


def shared_prompt_logprobs(model: Any, batch: dict[str, torch.Tensor], chunk: int = 1024,
                           layout: str | None = None, head: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token response log-probs of a collated batch (data/collate.py: input_ids, prompt_lengths,
    response_lengths, and groups, the rows sharing one prompt) through the shared-prompt layout.

    layout: "rows" (a row per prompt, padded to the longest) or "packed" (the same rows with the pads left out of
    the model's input: alignkit.engine.segments; rows where the model's attention does not take it); None picks
    `default_layout(model)`. head: "fused" (the log-probs straight from the hidden states and the LM head,
    alignkit.engine.head_logprobs) or "logits" (its plain twin, from the model's logits); None picks "fused" where
    head_logprobs.applies. Returns (logps (R, T) fp32, mask (R, T) bool) as response_logprobs does.
    """
    input_ids = batch["input_ids"]  # (R, L0), each row prompt + response, right padded
    prompt_len, resp_len = batch["prompt_lengths"].tolist(), batch["response_lengths"].tolist()
    blocks = _groups(batch["groups"].tolist())  # [[rows sharing a prompt], …] in order of first appearance
    device = input_ids.device
    width = max(prompt_len[rows[0]] + sum(resp_len[r] for r in rows) for rows in blocks)
    G = len(blocks)
    ids, pos, part, keep, at_flat, labels = _layout(input_ids.tolist(), prompt_len, resp_len, blocks, width)
    # (G, L) each: token ids (pads masked, any id will do), position ids, 0 prompt / j+1 response j / -1 pad, and
    # the positions whose logits are needed; at_flat (N,): the flat (G·L) position predicting each response token,
    # rows in batch order as the (R, T) mask's True entries; labels (N,) those tokens
    ids, pos, part = (torch.tensor(x, dtype=torch.long, device=device).view(G, width) for x in (ids, pos, part))
    keep = torch.tensor(keep, dtype=torch.bool, device=device).view(G, width)
    at_flat, labels = (torch.tensor(x, dtype=torch.long, device=device) for x in (at_flat, labels))

    inner = unwrap_model(model)
    fused = (head or ("fused" if head_logprobs.applies(inner) else "logits")) == "fused"
    with head_logprobs.hidden_out(inner) if fused else contextlib.nullcontext() as lm_head:
        out = None  # (M, V) logits, or (M, D) final hidden states where the head is fused
        if (layout or default_layout(model)) == "packed":  # the same rows, their pads left out of the model's input
            index = (part >= 0).flatten().nonzero().squeeze(1)  # (N,) the real positions, row-major
            segments = Segments(index, G, width, _block_mask(part, model))
            packed = [x.flatten()[index][None] for x in (ids, pos, keep)]  # (1, N) each
            out = segment_forward(functools.partial(_forward, model, *packed), inner, segments)
        if out is None:  # the rows layout, or a model whose attention did not take the blocks
            out = _forward(model, ids, pos, keep, attention_mask=_block_mask(part, model))
    # the kept positions in row-major order, which the packed row keeps
    kept_row = keep.flatten().cumsum(0) - 1  # (G·L,) flat position -> its row in out
    at = kept_row[at_flat]  # (N,)
    picked = (head_logprobs.head_logprobs(out, lm_head, at, labels) if fused
              else head_logprobs.plain_logprobs(out, at, labels, chunk))  # (N,) fp32

    t = torch.arange(max(resp_len), device=device)  # (T,)
    mask = t[None, :] < batch["response_lengths"][:, None]  # (R, T)
    logps = torch.zeros(mask.shape, dtype=torch.float32, device=device).masked_scatter(mask, picked)
    return logps, mask


def default_layout(model: Any) -> str:
    """"packed" where segments.supports the model, it runs on a device in PACKED_DEVICES and its hidden size is
    at least PACKED_MIN_HIDDEN, else "rows"."""
    inner = unwrap_model(model)
    on = next(inner.parameters()).device.type
    wide = getattr(inner.config, "hidden_size", PACKED_MIN_HIDDEN) >= PACKED_MIN_HIDDEN
    return "packed" if on in PACKED_DEVICES and wide and supports(inner) else "rows"


def _layout(input_ids: list[list[int]], prompt_len: list[int], resp_len: list[int], blocks: list[list[int]],
            width: int) -> tuple[list[int], ...]:
    """The shared-prompt rows as flat Python lists, built in one pass (a tensor op per row and response costs more
    than the model's forward on a small model): ids, pos, part, keep, each G·width long, row-major; at_flat and
    labels, one entry per response token."""
    ids: list[int] = []
    pos: list[int] = []
    part: list[int] = []
    keep: list[bool] = []
    predictors: list[list[int]] = [[] for _ in resp_len]
    labels: list[list[int]] = [[] for _ in resp_len]
    for g, rows in enumerate(blocks):
        p, base = prompt_len[rows[0]], g * width
        ids += input_ids[rows[0]][:p]
        pos += range(p)
        part += [0] * p
        keep += [False] * (p - 1) + [True]  # the prompt's last position predicts every response's first token
        col = p
        for j, r in enumerate(rows):
            n = resp_len[r]
            labels[r] = input_ids[r][p:p + n]
            ids += labels[r]
            pos += range(p, p + n)
            part += [j + 1] * n
            keep += [True] * (n - 1) + [False] * min(n, 1)  # a response's last token predicts nothing
            # token 0 is predicted by the prompt's last position, token t > 0 by the response's token t-1
            predictors[r] = [base + p - 1, *range(base + col, base + col + n - 1)] if n else []
            col += n
        ids += [0] * (width - col)
        pos += [0] * (width - col)
        part += [-1] * (width - col)
        keep += [False] * (width - col)
    return ids, pos, part, keep, [i for row in predictors for i in row], [t for row in labels for t in row]


def _groups(group_of_row: list[int]) -> list[list[int]]:
    members: dict[int, list[int]] = {}
    for row, group in enumerate(group_of_row):
        members.setdefault(group, []).append(row)
    return list(members.values())


def _block_mask(part: torch.Tensor, model: Any) -> torch.Tensor:
    """(G, 1, L, L) attention mask: query q sees key k <= q of its own row that is a prompt token or a token of
    q's own response. sdpa takes it as booleans (True = attend), eager adds it (0 or the dtype's minimum)."""
    L = part.shape[1]
    q = torch.arange(L, device=part.device)
    causal = q[:, None] >= q[None, :]  # (L, L)
    key, query = part[:, None, :], part[:, :, None]  # (G, 1, L), (G, L, 1)
    allow = causal & (key >= 0) & ((key == 0) | (key == query))  # (G, L, L)
    allow |= torch.eye(L, dtype=torch.bool, device=part.device)  # a pad query sees itself: no empty softmax row
    allow = allow[:, None]  # (G, 1, L, L)
    if unwrap_model(model).config._attn_implementation == "sdpa":
        return allow
    dtype = next(unwrap_model(model).parameters()).dtype
    return torch.zeros(allow.shape, dtype=dtype, device=part.device).masked_fill(~allow, torch.finfo(dtype).min)


def _forward(model: Any, ids: torch.Tensor, pos: torch.Tensor, keep: torch.Tensor, **inputs: Any) -> torch.Tensor:
    """Logits at the kept positions only, (M, V): through `logits_to_keep` where the model takes a boolean one
    (the LM head then runs on M positions), else sliced out of the full logits. `inputs`: the attention mask,
    and the blocks for alignkit.engine.segments."""
    extra = {"logits_to_keep": keep} if _takes_boolean_logits_to_keep(model) else {}
    logits = model(input_ids=ids, position_ids=pos, use_cache=False, **extra, **inputs).logits
    return logits[keep] if logits.dim() == 3 else logits


def _takes_boolean_logits_to_keep(model: Any) -> bool:
    """Whether the model's forward slices through transformers' slice_logits_to_keep, which reads a boolean
    (G, L) mask; a forward of its own (remote code, older releases) gets full logits, sliced here instead."""
    return _slices_logits(type(unwrap_model(model)))


@functools.lru_cache(maxsize=None)
def _slices_logits(cls: type) -> bool:
    try:
        return "slice_logits_to_keep(" in inspect.getsource(cls.forward)
    except (OSError, TypeError):
        return False
