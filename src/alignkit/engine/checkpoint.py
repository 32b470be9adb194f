"""Training checkpoints through accelerate's state, and the identity of the run a folder holds.

A checkpoint is <output>/checkpoints/step-NNNNNN: accelerate's `save_state` (model, optimizer, scheduler, every
process's RNG; sharded where the backend shards, as FSDP and DeepSpeed do), the loop's own state (step, the
work's multipliers) and `fingerprint.json`. It is written as a hidden temporary folder and renamed into place by
the main process, so a crash mid-write never leaves a half checkpoint that --resume would pick up. Without a
sharding backend only trainable tensors are kept: the full weights for full fine-tuning, the adapter for LoRA.

The run's fingerprint (`run_fingerprint`) is everything that decides what training computes: model, data (by
content), objective and options, seed, batch sizes, schedule, world size. `--resume` loads a checkpoint only when
its fingerprint is this run's, so a checkpoint of another run never loads.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

KEEP = 2  # newest checkpoints kept on disk
RUN_FILE = "alignkit-run.json"  # the fingerprint of the run a folder holds, written when the run starts
# Resolved options that do not change what training computes: where it writes, how often it logs or saves, which
# device, how the run is started, whether free memory goes back to the system (a run that ran out of memory may
# resume with --release-memory), which CPU kernel runs the matmuls (--onednn) and how the LM head's log-probs are
# read (--fused-head): the last two give the same numbers to rounding.
NOT_IN_FINGERPRINT = {"output", "resume", "overwrite", "save_steps", "logging_steps", "eval_steps", "device",
                      "report_to", "release_memory", "onednn", "fused_head"}


def checkpoint_dir(output: str | Path) -> Path:
    return Path(output) / "checkpoints"


def newest(output: str | Path) -> Path | None:
    """The newest complete checkpoint folder, or None."""
    folder = checkpoint_dir(output)
    found = sorted(p for p in folder.glob("step-*") if re.fullmatch(r"step-\d+", p.name)) if folder.is_dir() else []
    return found[-1] if found else None


def run_fingerprint(resolved: dict[str, Any], world_size: int, data_identity: str) -> dict[str, Any]:
    """What decides a run's computation, as a flat dict (compared key by key on --resume)."""
    values = {k: v for k, v in resolved.items() if k not in NOT_IN_FINGERPRINT}
    return {**values, "world_size": world_size, "data_identity": data_identity}


def fingerprint_of(folder: Path) -> dict[str, Any] | None:
    """The fingerprint stored in a checkpoint folder or a run folder, or None."""
    path = folder / "fingerprint.json" if folder.name.startswith("step-") else folder / RUN_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """'key: A there, B here' for every key whose value differs."""
    keys = sorted(set(stored) | set(current))
    return [f"{k}: {stored.get(k)!r} there, {current.get(k)!r} here" for k in keys if stored.get(k) != current.get(k)]


def holds_a_run(output: Path) -> bool:
    return any((output / name).exists() for name in (RUN_FILE, "metrics.jsonl", "checkpoints"))


def clear_run(output: Path) -> None:
    """Remove what belongs to the run a folder held (checkpoints, metrics, reference cache, run file); its final
    model files stay until the new run writes its own over them."""
    shutil.rmtree(checkpoint_dir(output), ignore_errors=True)
    for name in (RUN_FILE, "metrics.jsonl", "ref_logps.pt", "exact.json"):
        (output / name).unlink(missing_ok=True)


def write_json_atomic(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as f:
        f.write(json.dumps(value, indent=1, sort_keys=True, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def data_digest(rows: list[list[int]]) -> str:
    """A short hash of token-id rows (the pairs or prompts a run trains on)."""
    h = hashlib.sha256()
    for ids in rows:
        h.update(json.dumps(ids).encode())
    return h.hexdigest()[:16]


class LoopState:
    """What a checkpoint keeps beyond accelerate's own state: the step and the work's state (multipliers)."""

    def __init__(self) -> None:
        self.step = 0
        self.work: dict[str, Any] = {}

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "work": self.work}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.work = int(state["step"]), dict(state.get("work", {}))


def keep_trainable_only(accelerator: Any) -> None:
    """Make accelerate's save_state keep only trainable tensors of an unsharded model (a LoRA checkpoint is then
    the adapter, not a copy of the base model); sharding backends save their own way and are left alone."""
    def hook(models: list[Any], weights: list[dict], output_dir: str) -> None:
        for i, (model, state) in enumerate(zip(models, weights)):
            trainable = {n for n, p in model.named_parameters() if p.requires_grad}
            weights[i] = {k: v for k, v in state.items() if k in trainable}

    accelerator.register_save_state_pre_hook(hook)


def save(output: Path, step: int, accelerator: Any, fingerprint: dict[str, Any]) -> Path:
    """Write checkpoint `step` through accelerate (every process takes part) and prune old ones; its folder."""
    folder = checkpoint_dir(output)
    final, tmp = folder / f"step-{step:06d}", folder / f".tmp-step-{step:06d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json_atomic(tmp / "fingerprint.json", fingerprint)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in sorted(folder.glob("step-*"))[:-KEEP]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load(path: Path, accelerator: Any) -> None:
    """Restore weights, optimizer, scheduler, RNG and the registered loop state from a checkpoint."""
    accelerator.load_state(str(path), strict=False)  # trainable-only weights: the frozen rest is the start's
