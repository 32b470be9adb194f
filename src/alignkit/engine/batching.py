"""Which rows each micro-batch of the training loop reads: a pure function of the step, so a resumed run sees
exactly the batches an uninterrupted one would have."""
from __future__ import annotations

import math

import torch


def total_steps(max_steps: int | None, epochs: float, n: int, batch_size: int, grad_accum: int) -> int:
    """Optimizer steps of a run: --max-steps, else `epochs` passes over n rows in micro-batches of batch_size."""
    return max_steps or max(1, math.ceil(epochs * math.ceil(n / batch_size) / grad_accum))


def step_micro_batches(seed: int, n: int, batch_size: int, grad_accum: int, step: int) -> list[list[int]]:
    """Row numbers of each of the grad_accum micro-batches of optimizer step `step` (0-based)."""
    return [micro_batch_rows(seed, n, batch_size, step * grad_accum + i) for i in range(grad_accum)]


def micro_batch_rows(seed: int, n: int, batch_size: int, micro_step: int) -> list[int]:
    """Row numbers of global micro-batch `micro_step`: each epoch is a fresh seeded permutation of range(n)."""
    per_epoch = math.ceil(n / batch_size)
    epoch, j = divmod(micro_step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return order[j * batch_size:(j + 1) * batch_size].tolist()
