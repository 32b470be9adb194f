"""What the one training loop drives: a `Work` (pairwise preference pairs, or online sampled groups) and the
`RunContext` every work is built from.

The loop (alignkit.engine.train) knows nothing of pairs or samples: it asks the work which rows each
micro-batch of a step reads, turns its per-term losses into one update, and logs what the work reports. Which
work runs follows from `--online` and the objective's modes (its record), never from its name.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from alignkit import config as C
from alignkit.engine.distributed import Dist


@dataclass
class RunContext:
    """Everything a work needs, built once by the loop."""

    cfg: C.TrainConfig
    objective: Any                   # the registry.Objective record
    options: Any                     # its options dataclass instance
    transforms: list[tuple[Any, Any]]  # (registry.Transform, its options) for each enabled switch
    policy: Any                      # the model being trained, as accelerate prepared it (DDP, FSDP, ...)
    bare: Any                        # the same model unwrapped (a PEFT model with --lora): sampling, adapter-off
    tokenizer: Any
    dist: Dist                       # this process's place in the run, and the collective steps
    compute: Callable[[], Any]       # a context manager factory: accelerate's autocast (bf16, or nothing)
    dtype_name: str                  # "bf16" or "fp32": part of the reference cache's key
    output: Path
    progress_bar: Callable[[], Any]  # a context manager factory yielding a rich Progress

    @property
    def device(self) -> torch.device:
        return self.dist.device

    def inference_model(self) -> Any:
        """The model to run without gradient (reference passes, sampling): the bare model, whose forward needs
        no other process, unless a sharding backend holds only a shard of it here."""
        return self.policy if self.dist.sharded else self.bare


class Work(Protocol):
    """The five calls the loop makes (plus total_steps, fixed when the work is built)."""

    total_steps: int

    def micro_batches(self, step: int) -> list[list[int]]:
        """Row numbers each of the grad_accum micro-batches of optimizer step `step` (0-based) reads: a pure
        function of the step, so a resumed run reads exactly what an uninterrupted one would have."""

    def count(self, rows: list[int]) -> int:
        """Loss terms in a micro-batch (pairs, or sampled completions): the step's losses are summed over all
        its terms and divided by their number, so 8 × 1 and 2 × 4 accumulation give the same update."""

    def losses(self, rows: list[int], step: int, micro: int) -> tuple[torch.Tensor, dict[str, float]]:
        """(n,) per-term losses with gradient, and the micro-batch's metrics as sums over its terms."""

    def finish(self, step: int, sums: dict[str, float], n: int) -> dict[str, float]:
        """The step's logged fields from its sums (and any per-step update, e.g. QEMPO's dual ascent)."""

    def state(self) -> dict[str, Any]:
        """What a checkpoint must keep beyond weights, optimizer, scheduler and RNG (e.g. multipliers)."""

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore `state()` from a checkpoint."""


# The work of each training mode; a mode the objective's record declares picks its work.
WORKS = {"pairwise": "alignkit.engine.pairwise:PairwiseWork", "online": "alignkit.engine.online:OnlineWork"}


def make_work(mode: str, ctx: RunContext) -> Work:
    module, name = WORKS[mode].split(":")
    return getattr(importlib.import_module(module), name)(ctx)
