"""One process or many, through accelerate: the Accelerator a run is driven by, and the few collective steps the
loop and the works need (sharding a global batch, summing metrics, agreeing on a failure).

    alignkit train dpo --batch-size 4                                       # one process
    torchrun --standalone --nproc_per_node 2 -m alignkit train dpo --batch-size 4      # DDP (gloo on CPU)
    accelerate launch --config_file examples/accelerate/fsdp2.yaml -m alignkit train dpo

`--batch-size` is per process, as TRL's per-device batch: a step's global batch is batch × processes × grad-accum.
Each process reads its own slice of every global micro-batch, so N processes × batch b see exactly the rows one
process × batch N·b would. Nothing here is home-made distribution: accelerate prepares the model (DDP, FSDP2,
DeepSpeed from its own config files), places devices and runs mixed precision.
"""
from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import torch

from alignkit.errors import UserError

# How long a process waits for its peers to join (or to reach a collective) before giving up with one line. The
# torch default is 30 minutes; a launcher pointing at an unreachable peer should fail well before that.
JOIN_TIMEOUT_S = int(os.environ.get("ALIGNKIT_DIST_TIMEOUT", "600"))


def launched_world_size() -> int:
    """Processes the launcher started (torchrun / accelerate launch set WORLD_SIZE); 1 without a launcher."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Whether this process prints and writes: rank 0, or the only process. Cheap, needs no Accelerator."""
    return int(os.environ.get("RANK", "0")) == 0


def make_accelerator(device: str, bf16: bool) -> Any:
    """The run's Accelerator. `--device cpu` (or no CUDA) makes a CPU run, multi-process over gloo under a launcher;
    bf16 is accelerate's mixed precision unless an accelerate config chose one (accelerate launch sets it)."""
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    cpu = device == "cpu" or not torch.cuda.is_available()
    if device.startswith("cuda:") and launched_world_size() == 1:
        torch.cuda.set_device(int(device.split(":", 1)[1]))  # one process on the GPU the user named
    elif device not in ("auto", "cpu", "cuda") and launched_world_size() > 1:
        raise UserError(f"--device {device} names one device, but the launcher started {launched_world_size()} "
                        "processes; leave --device auto (each process takes its own GPU)")
    mixed = None if "ACCELERATE_MIXED_PRECISION" in os.environ else ("bf16" if bf16 else "no")
    if launched_world_size() == 1:  # one process may run several trainings (tests, notebooks): start afresh
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    try:
        return Accelerator(cpu=cpu, mixed_precision=mixed,
                           kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=JOIN_TIMEOUT_S))])
    except (RuntimeError, ValueError, OSError) as exc:  # a launcher whose peers never answer, a bad backend
        if launched_world_size() == 1:
            raise
        where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
        raise UserError(f"could not join the other processes at {where} (rank {os.environ.get('RANK', '?')} of "
                        f"{launched_world_size()}): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; "
                        "check the launcher's --nnodes / --master_addr / --master_port") from None


class Dist:
    """The collective steps of a run, the same code for one process and for many."""

    def __init__(self, accelerator: Any) -> None:
        self.accelerator = accelerator
        self.world = accelerator.num_processes
        self.rank = accelerator.process_index
        self.is_main = accelerator.is_main_process
        self.device = accelerator.device
        # FSDP and DeepSpeed hold a shard of the model on each process: every forward is then a collective step
        self.sharded = str(accelerator.distributed_type).rsplit(".", 1)[-1] in ("FSDP", "DEEPSPEED")

    def shard(self, rows: list[int]) -> list[int]:
        """This process's slice of a global micro-batch: contiguous, as even as the rows allow (1 process × batch
        8 reads the rows 2 processes × batch 4 split between them)."""
        per, extra = divmod(len(rows), self.world)
        start = self.rank * per + min(self.rank, extra)
        return rows[start:start + per + (1 if self.rank < extra else 0)]

    def check_divides(self, n: int, batch: int, what: str) -> None:
        """Every process must get at least one row of every micro-batch; the last one of an epoch holds
        n mod (batch × processes) rows, so refuse a split that leaves a process none."""
        last = n % (batch * self.world)
        if 0 < last < self.world:
            raise UserError(f"with {self.world} processes × --batch-size {batch}, the last micro-batch of each epoch "
                            f"holds {last} of the {n} {what}, fewer than the processes: choose a --batch-size or a "
                            "number of processes that leaves every process a row")

    def sum(self, values: dict[str, float]) -> dict[str, float]:
        """Every process's sums added up (metric sums, term counts): the same dict on every process."""
        if self.world == 1 or not values:
            return dict(values)
        keys = sorted(values)
        total = self.accelerator.reduce(torch.tensor([float(values[k]) for k in keys], dtype=torch.float64,
                                                     device=self.device), reduction="sum")
        return dict(zip(keys, total.tolist()))

    def any(self, flag: bool) -> bool:
        """Whether any process raised the flag (a stop signal, a failure): every process gets the same answer."""
        if self.world == 1:
            return flag
        return bool(self.accelerator.reduce(torch.tensor([float(flag)], device=self.device), "sum").item() > 0)

    def first_error(self, message: str | None) -> str | None:
        """The first process's failure message, shared with every process (None when all succeeded)."""
        if self.world == 1:
            return message
        if not self.any(message is not None):
            return None
        from accelerate.utils import gather_object

        return next(m for m in gather_object([message]) if m is not None)

    def all_done(self, done: bool) -> bool:
        """For a loop whose every iteration is a collective step (sampling a sharded model): go on until every
        process is done."""
        return not self.any(not done)

    def from_main(self, value: Any) -> Any:
        """The main process's `value` on every process (what it decided alone, e.g. how a run starts)."""
        if self.world == 1:
            return value
        from accelerate.utils import broadcast_object_list

        return broadcast_object_list([value], from_process=0)[0]

    def barrier(self) -> None:
        if self.world > 1:
            self.accelerator.wait_for_everyone()

    def print(self, *args: Any, **kwargs: Any) -> None:
        if self.is_main:
            print(*args, **kwargs)
