"""CPU fp32 linear layers whose matmuls run in oneDNN instead of MKL's sgemm, forward and backward.

    OneDnnLinear.install(model, cfg.onednn, device, note)   # after LoRA, before accelerate wraps the model
    model(...)                                            # every large fp32 nn.Linear on the CPU: oneDNN's kernels

torch sends an fp32 matmul on the CPU to MKL's sgemm. On an AMD CPU with AVX-512 MKL takes a slower code path than
oneDNN's, which torch ships too (machine D, an AMD EPYC Zen 5: 44 against 24 ms for one decode step's 210 SmolLM2
matmuls at 16 rows, 58 against 29 ms for a training forward's at 340 tokens, the same for the two backward matmuls).
On an AMD CPU without AVX-512 the two are even forward and oneDNN is slower backward (machine E, a Zen 3 EPYC: 533
against 519 ms forward, 493 against 596 ms for the input's gradient, 565 against 784 for the weight's), so auto
leaves it off there (docs/speed.md). A layer's forward is oneDNN's linear on its dense weight (no packed copy, so a
training step's weights need no re-layout), and its backward is two more oneDNN linears: the input's gradient
g @ W, the weight's gᵀ @ x, both on transposed views.

`--onednn` (train and decode): auto engages on AMD x86 CPUs with AVX-512 only (on Intel MKL is torch's tuned path;
on other CPUs nothing was measured), on forces it wherever torch has oneDNN, off is the plain twin (torch's own
F.linear). The numbers are the same to float rounding (another summation order: logits to ~1e-6 relative; from
two rows up an output row does not depend on the rows beside it, so shared and unshared prefills still agree token
for token; MKL's rows move with the row count up to 11 rows on Zen 3).

Where it engages: a plain nn.Linear (not a subclass: peft's LoRA layers keep their forward, their base layer is
swapped) with at least MIN_WEIGHT elements, fp32, on the CPU, unsharded. Under 256 × 256 oneDNN's per-call cost
outweighs its faster kernel (19.4 µs against MKL's 8.6 at 64 × 64 and 32 rows, machine D), so the toy models and
tiny test models stay plain. A call it cannot take (another dtype or device after a move, CPU autocast) runs
F.linear. The swap is the module's class, so deep copies (a frozen reference) keep it with their own weights and
state dicts do not change.
tests/engine/test_onednn_linear.py checks outputs and gradients against F.linear.
"""
from __future__ import annotations

import functools
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

MIN_WEIGHT = 256 * 256  # elements: where oneDNN's kernel starts to beat MKL's for one call (measured on machine D)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x (M, K) @ weight (N, K)ᵀ + bias -> (M, N) in oneDNN; x and weight may be transposed views."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def _rows(t: torch.Tensor) -> torch.Tensor:
    """t as (M, last dim), row-major: oneDNN takes plain strides, not an expanded (stride 0) gradient."""
    flat = t.reshape(-1, t.shape[-1])
    return flat if flat.is_contiguous() else flat.contiguous()


class _OneDnnMatmul(torch.autograd.Function):
    """y = x Wᵀ + b with oneDNN forward and backward; x (..., K), W (N, K), b (N,) or None."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        x2 = _rows(x)  # (M, K), a view of x when x is contiguous: autograd's F.linear keeps x alive the same way
        ctx.save_for_backward(x2, weight)
        ctx.input_shape = x.shape
        return linear(x2, weight, bias).view(*x.shape[:-1], weight.shape[0])  # (..., N)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x2, weight = ctx.saved_tensors
        g2 = _rows(grad)  # (M, N)
        dx = linear(g2, weight.t(), None).view(ctx.input_shape) if ctx.needs_input_grad[0] else None  # (..., K)
        dw = linear(g2.t(), x2.t(), None) if ctx.needs_input_grad[1] else None  # (N, M) @ (M, K) -> (N, K)
        db = g2.sum(0) if ctx.needs_input_grad[2] else None  # (N,)
        return dx, dw, db


class OneDnnLinear(torch.nn.Linear):
    """nn.Linear whose fp32 CPU calls run in oneDNN (install() swaps a module's class to this one)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        if (x.dtype != torch.float32 or w.dtype != torch.float32 or x.device.type != "cpu"
                or w.device.type != "cpu" or torch.is_autocast_enabled("cpu")):
            return torch.nn.functional.linear(x, w, self.bias)  # moved, cast or autocast: torch's own path
        if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad
                                        or (self.bias is not None and self.bias.requires_grad)):
            return _OneDnnMatmul.apply(x, w, self.bias)
        return linear(_rows(x), w, self.bias).view(*x.shape[:-1], w.shape[0])  # sampling, reference passes

    @staticmethod
    def install(model: torch.nn.Module, mode: str, device: Any, note: Callable[[str], Any] = print,
                sharded: bool = False, min_weight: int | None = None) -> int:
        """Swap every large fp32 nn.Linear of `model` to OneDnnLinear where `mode` (auto / on / off) and the
        device say so; returns how many were swapped. `note` gets one line where "on" cannot be honoured."""
        if mode == "off":
            return 0
        where = (f"on {torch.device(device)}" if torch.device(device).type != "cpu"
                 else "in a sharded run" if sharded  # FSDP's / DeepSpeed's weights are not plain tensors
                 else "with this torch build (no oneDNN linear)" if not onednn_available() else None)
        if where is not None:
            if mode == "on":
                note(f"note: --onednn on does nothing {where}: it runs fp32 CPU matmuls in oneDNN")
            return 0
        if mode == "auto" and not auto_engages():
            return 0
        min_weight = MIN_WEIGHT if min_weight is None else min_weight
        swapped = 0
        for module in model.modules():
            if (type(module) is torch.nn.Linear and module.weight.dtype == torch.float32
                    and module.weight.numel() >= min_weight):
                module.__class__ = OneDnnLinear  # the same module, weights and state dict; another forward
                swapped += 1
        return swapped


@functools.cache
def onednn_available() -> bool:
    """Whether this torch build runs oneDNN's linear on an x86-64 CPU (tried once on a tiny input)."""
    if platform.machine().lower() not in ("x86_64", "amd64") or not torch.backends.mkldnn.is_available():
        return False
    try:
        out = linear(torch.ones(2, 3), torch.ones(4, 3), None)
    except (RuntimeError, AttributeError):
        return False
    return bool(torch.equal(out, torch.full((2, 4), 3.0)))


def auto_engages() -> bool:
    """--onednn auto's rule: an AMD CPU with AVX-512, where MKL's sgemm was measured at half oneDNN's speed."""
    vendor, flags = cpu_info()
    return vendor == "AuthenticAMD" and "avx512f" in flags


@functools.cache
def cpu_info() -> tuple[str, frozenset[str]]:
    """The CPU's vendor id (GenuineIntel, AuthenticAMD) and feature flags from /proc/cpuinfo; ("", {}) without it."""
    vendor, flags = "", frozenset()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "vendor_id" and not vendor:
                vendor = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = frozenset(value.split())
            if vendor and flags:
                break
    except OSError:
        pass
    return vendor, flags
