"""Freed heap memory handed back to the system during the backward, on the CPU (glibc's malloc_trim).

    release = HeapRelease.where_useful(params, cfg, dist)   # after StepInBackward, whose hooks must run first
    loss.backward()                                          # malloc_trim(0) after every ~48 MiB of new gradients
    optimizer.step(); optimizer.zero_grad(set_to_none=True)
    release.after_step()                                     # and once for the gradients just freed

Where a CPU training step's peak is (SmolLM2-135M, fp32, batch 4, docs/speed.md): at the end of the backward, when
every gradient is alive beside the weights and AdamW's moments. The backward frees the forward's saved activations
while it allocates the gradients, but glibc rarely fits a gradient (a whole weight matrix, 0.4-3.5 MB) into the
holes the activations and the step's small objects leave: the gradients take new pages and the holes stay resident,
0.3 GiB of free memory in ~15k chunks at the peak. glibc's malloc_trim(0) gives every whole free page back
(madvise), wherever it lies in the heap. Called every ~48 MiB of gradients (11 times a step on SmolLM2), the holes
are returned as they open; called once more after the step frees the gradients, the next forward does not start
on 0.5 GiB of resident free heap either. The peak comes down towards what is alive (2.43 GiB there; measured
2.52-2.63 instead of 2.80-2.83 GiB).

The price is time: each call walks the heap (~4-10 ms) and returned pages fault in again when reused; the step
took 0-11% longer in clean A/B runs (one run +24%, on a machine whose steps vary by ±0.3 s), 13% on machine F
(three times the page faults). So it is opt-in (`--release-memory`), for CPU runs that must fit in RAM. It does
not change a number the step computes: it only returns memory nothing holds. Off the CPU or without glibc (macOS,
musl) there is nothing to do and the flag says so once.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from typing import Any

import torch

EVERY_BYTES = 48 * 2**20  # new gradient bytes between two trims: ~3 decoder layers of SmolLM2-135M
TIGHT = 0.6  # the training state's share of the free memory from which a run without the flag hears of it


def free_bytes() -> int | None:
    """MemAvailable from /proc/meminfo, or None where there is none (not Linux)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


@functools.cache
def glibc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


class HeapRelease:
    """Post-accumulate-grad hooks that call `trim(0)` each time `every_bytes` more gradient bytes have landed."""

    def __init__(self, params: list[torch.nn.Parameter], trim: Callable[[int], Any], every_bytes: int) -> None:
        self.trim, self.every_bytes = trim, every_bytes
        self.pending = 0  # gradient bytes since the last trim
        self.calls = 0
        for p in params:
            p.register_post_accumulate_grad_hook(functools.partial(self._landed, p.numel() * p.element_size()))

    @classmethod
    def where_useful(cls, params: list[torch.nn.Parameter], cfg: Any, dist: Any) -> HeapRelease | None:
        """Hooks when --release-memory is set and training runs on the CPU with glibc; None (and a note why)
        otherwise. Without the flag, a CPU run whose training state (weights, gradients and AdamW's two moments)
        takes TIGHT of the free memory or more is told of it once."""
        trim = glibc_trim()
        if not cfg.release_memory:
            state = 4 * sum(p.numel() * p.element_size() for p in params)
            free = free_bytes() if dist.device.type == "cpu" and trim is not None else None
            if free is not None and state >= TIGHT * free:
                dist.print(f"note: the training state (weights, gradients, AdamW's moments) is {state / 2**30:.1f} "
                           f"GiB of the {free / 2**30:.1f} GiB free; --release-memory lowers the peak by about 10% "
                           "for 10-15% more time a step")
            return None
        if dist.device.type != "cpu" or trim is None:
            where = "without glibc" if trim is None else f"on {dist.device.type}"
            dist.print(f"note: --release-memory does nothing {where}: it returns glibc's free heap pages on the CPU")
            return None
        return cls(params, trim, EVERY_BYTES)

    def after_step(self) -> None:
        """Trim now and count gradient bytes afresh: the loop calls it once the step has freed the gradients
        (set_to_none), the hooks each time every_bytes more have landed."""
        self.trim(0)
        self.pending, self.calls = 0, self.calls + 1

    def _landed(self, nbytes: int, _param: torch.Tensor) -> None:
        self.pending += nbytes
        if self.pending >= self.every_bytes:
            self.after_step()
