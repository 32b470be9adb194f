"""The sampler's decode step for Llama-architecture models, without transformers' per-call glue.

    step = DecodeStep.after_prefill(model, cache, capacity, attention_mask)   # None where it does not apply
    logits = step(token, attention_mask, position_ids)                        # (B, 1) ids -> (B, V) logits

For one new token a transformers forward spends much of its time around the matmuls: the mask is rebuilt, the
cache object concatenates every layer's keys and values, outputs are wrapped in classes and kwargs pass through
several decorators. On the toy model that is a third of a decode step (1.40 against 0.93 ms at 64 rows), on
SmolLM2-135M 8% (74.8 against 68.9 ms at 16 rows; machine F). This step calls the model's own modules in the order
LlamaModel.forward calls them (embedding, rotary embedding, per layer the norms, projections, rotary function,
transformers' attention function and MLP, then the final norm and the LM head), so LoRA layers, --onednn's linears
and hub kernels run as they would. Keys and values go into buffers sized once after the prefill. Its logits are
the model forward's bit for bit (tests/sampling/test_decode_step.py); the model's forward is the plain twin, which
`--plain-sampling` (decode) and `--no-shared-prompt` (online training) run.

Where it applies (`supports`): a model whose class ARCHITECTURES names (Llama, Qwen2), with sdpa attention and no
sliding-window layer, its layers the classes that architecture builds, none of them with forward hooks (FSDP, accelerate's offloading and DeepSpeed's ZeRO-3
gather weights in hooks this step would bypass), no DTensor parameters. Any other model steps through its forward.
"""
from __future__ import annotations

import sys
from typing import Any

import torch

from alignkit.engine.models import unwrap_model

# causal LM class -> (its decoder layer class, its attention class): the architectures whose forward this step
# reproduces (Qwen2's differs from Llama's only by a sliding window, which this step leaves to the forward). A new
# one is added only with a bit-for-bit test against its forward.
ARCHITECTURES = {"LlamaForCausalLM": ("LlamaDecoderLayer", "LlamaAttention"),
                 "Qwen2ForCausalLM": ("Qwen2DecoderLayer", "Qwen2Attention")}
ATTENTION = "sdpa"  # the attention implementation whose mask this step builds as transformers does


def supports(model: Any) -> bool:
    inner = unwrap_model(model)
    classes = ARCHITECTURES.get(type(inner).__name__)
    config = getattr(inner, "config", None)
    if classes is None or getattr(config, "_attn_implementation", None) != ATTENTION:
        return False
    if "sliding_attention" in (getattr(config, "layer_types", None) or ()):
        return False  # a sliding-window layer needs transformers' other mask
    layers = list(inner.model.layers)
    if any(type(layer).__name__ != classes[0] or type(layer.self_attn).__name__ != classes[1] for layer in layers):
        return False
    bypassed = [model, inner, inner.model, *layers, *(layer.self_attn for layer in layers)]
    if any(m._forward_hooks or m._forward_pre_hooks or hasattr(m, "_hf_hook") for m in bypassed):
        return False
    return not any(type(p).__name__ == "DTensor" or hasattr(p, "ds_id") for p in inner.parameters())


class DecodeStep:
    """One model's decode steps after its prefill: the keys and values in buffers of `capacity` positions."""

    def __init__(self, model: Any, cache: Any, capacity: int, attention_mask: torch.Tensor) -> None:
        inner = unwrap_model(model)
        self.head, self.body = inner.lm_head, inner.model
        self.layers = list(self.body.layers)
        attention = self.layers[0].self_attn
        # the functions the attention's forward calls, looked up where it looks them up
        self.rotary = vars(sys.modules[type(attention).__module__])["apply_rotary_pos_emb"]
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        self.attend = ALL_ATTENTION_FUNCTIONS.get_interface(ATTENTION, None)
        self.keys, self.values = [], []  # per layer (B, H_kv, capacity, D)
        for layer in cache.layers:
            k, v = layer.keys, layer.values  # (B, H_kv, T, D)
            kb = k.new_empty((*k.shape[:2], capacity, k.shape[-1]))
            vb = v.new_empty((*v.shape[:2], capacity, v.shape[-1]))
            kb[:, :, :k.shape[2]], vb[:, :, :v.shape[2]] = k, v
            self.keys.append(kb)
            self.values.append(vb)
        self.length = cache.layers[0].keys.shape[2]  # positions filled
        # transformers drops the mask when no row is padded (sdpa then takes its causal path): the same here. New
        # columns are all ones, so whether a row is padded cannot change after the prefill.
        self.padded = not bool(attention_mask.bool().all())

    @classmethod
    def after_prefill(cls, model: Any, cache: Any, capacity: int, attention_mask: torch.Tensor) -> DecodeStep | None:
        """The step for a model whose prefill filled `cache` (a DynamicCache), or None where `supports` says no."""
        if cache is None or not getattr(cache, "layers", None) or not supports(model):
            return None
        return cls(model, cache, capacity, attention_mask)

    def __call__(self, token: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        """token (B, 1), attention_mask (B, n + 1) over every position so far, position_ids (B, 1) -> (B, V)."""
        n = self.length
        if n >= self.keys[0].shape[2]:
            raise ValueError(f"the decode step's buffers hold {n} positions; sized too small")
        B = token.shape[0]
        hidden = self.body.embed_tokens(token)  # (B, 1, D)
        cos, sin = self.body.rotary_emb(hidden, position_ids)
        mask = attention_mask.bool()[:, None, None, :] if self.padded else None  # (B, 1, 1, n + 1)
        for layer, keys, values in zip(self.layers, self.keys, self.values):
            attention = layer.self_attn
            x = layer.input_layernorm(hidden)
            shape = (B, 1, -1, attention.head_dim)
            q = attention.q_proj(x).view(shape).transpose(1, 2)  # (B, H, 1, D)
            k = attention.k_proj(x).view(shape).transpose(1, 2)  # (B, H_kv, 1, D)
            v = attention.v_proj(x).view(shape).transpose(1, 2)
            q, k = self.rotary(q, k, cos, sin)
            keys[:, :, n:n + 1], values[:, :, n:n + 1] = k, v
            out, _ = self.attend(attention, q, keys[:, :, :n + 1], values[:, :, :n + 1], mask,
                                 dropout=attention.attention_dropout if attention.training else 0.0,
                                 scaling=attention.scaling,
                                 sliding_window=getattr(attention, "sliding_window", None))  # (B, 1, H, D)
            hidden = hidden + attention.o_proj(out.reshape(B, 1, -1).contiguous())
            hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
        self.length = n + 1
        return self.head(self.body.norm(hidden)[:, -1])  # (B, V)
