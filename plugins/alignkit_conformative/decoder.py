"""ConformativeDecoder: each step, mix the instruct (policy) and base models' next-token distributions.

    alignkit decode --conformative --model INSTRUCT --conformative-base-model BASE --conformative-weight 0.5 --top-p 0.9

Formula (arXiv 2507.20956), with p_inst and p_base the temperature-scaled softmax of each model's logits:
    prob:     p(v) ∝ (1 - w) p_inst(v) + w p_base(v)              on the candidate set S
    logprob:  p(v) ∝ p_inst(v)^(1 - w) p_base(v)^w                 on the candidate set S
    S = the instruct distribution's truncated set (top-k/top-p/min-p) for truncate_on=instruct,
        the mixture's truncated set for truncate_on=mixed.
Intuition: the base model adds back the diversity instruction tuning removed, while the instruct model's nucleus
keeps the sample on task. At w = 0 every operation reduces exactly to the `sample` decoder's, so the same seed
draws the same tokens.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from alignkit.engine.distributions import apply_temperature, renormalize, support


class ConformativeDecoder:
    def __init__(self, options: Any) -> None:
        if not 0.0 <= options.weight <= 1.0:
            from alignkit.errors import UserError

            raise UserError(f"--conformative-weight must be between 0 and 1, got {options.weight}")
        self.options = options
        self.extra_models = {"base": options.base_model}

    def mixture(self, inst: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """(B, V) log-probs of both models -> (B, V) log-weights of the mixture (normalised for prob only)."""
        w = self.options.weight
        if self.options.mix == "prob":
            # log((1-w) p_inst + w p_base); at w = 0 this is inst itself, bit for bit: log1p(-0) = 0 and
            # logaddexp(x, -inf) = x. At w = 1 it is base itself.
            log_w = math.log(w) if w > 0 else float("-inf")
            log_1mw = math.log1p(-w) if w < 1 else float("-inf")
            return torch.logaddexp(log_1mw + inst, log_w + base)
        # geometric, unnormalised: (1-w) log p_inst + w log p_base. Clamping -inf keeps 0 * -inf from making NaN;
        # a token impossible under a model with non-zero weight stays impossible.
        floor = torch.finfo(inst.dtype).min
        mixed = (1 - w) * inst.clamp(min=floor) + w * base.clamp(min=floor)
        impossible = (~inst.isfinite() & (w < 1)) | (~base.isfinite() & (w > 0))
        return mixed.masked_fill(impossible, float("-inf"))

    def step(self, logits: dict[str, torch.Tensor], settings: Any) -> torch.Tensor:
        inst_logits, base_logits = logits["policy"], logits["base"]
        V = min(inst_logits.shape[-1], base_logits.shape[-1])  # embedding matrices may be padded differently
        inst = apply_temperature(inst_logits[:, :V], settings.temperature)  # (B, V) log p_inst
        base = apply_temperature(base_logits[:, :V], settings.temperature)  # (B, V) log p_base
        mixed = self.mixture(inst, base)  # (B, V)
        keep = support(inst if self.options.truncate_on == "instruct" else renormalize(mixed), settings)
        out = renormalize(mixed.masked_fill(~keep, float("-inf")))  # (B, V)
        if inst_logits.shape[-1] > V:  # tokens only the policy's head has get no mass
            out = torch.cat([out, out.new_full((out.shape[0], inst_logits.shape[-1] - V), float("-inf"))], -1)
        return out
