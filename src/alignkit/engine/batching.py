"""Which rows each micro-batch of the training loop reads: a pure function of the step, so a resumed run sees
exactly the batches an uninterrupted one would have."""
from __future__ import annotations

import math

import torch


def micro_batch_rows(seed: int, n: int, batch_size: int, micro_step: int) -> list[int]:
    """Row numbers of global micro-batch `micro_step`: each epoch is a fresh seeded permutation of range(n)."""
    per_epoch = math.ceil(n / batch_size)
    epoch, j = divmod(micro_step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return order[j * batch_size:(j + 1) * batch_size].tolist()
