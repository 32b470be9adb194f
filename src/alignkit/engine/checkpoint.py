"""Training checkpoints: trainable weights, optimizer, scheduler, RNG and data position, written atomically.

A checkpoint is a folder <output>/checkpoints/step-NNNNNN written first as a hidden temporary folder and then
renamed with os.replace, so a crash mid-write never leaves a half checkpoint that --resume would pick up.
"""
from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import torch

KEEP = 2  # newest checkpoints kept on disk


def checkpoint_dir(output: str | Path) -> Path:
    return Path(output) / "checkpoints"


def newest(output: str | Path) -> Path | None:
    """The newest complete checkpoint folder, or None."""
    folder = checkpoint_dir(output)
    found = sorted(p for p in folder.glob("step-*") if re.fullmatch(r"step-\d+", p.name)) if folder.is_dir() else []
    return found[-1] if found else None


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(output: str | Path, step: int, model: Any, optimizer: Any, scheduler: Any, extra: dict[str, Any]) -> Path:
    """Write checkpoint `step` atomically and prune old ones; returns its folder."""
    folder = checkpoint_dir(output)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:06d}"
    tmp = folder / f".tmp-step-{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    # Only trainable tensors: the full weights for full fine-tuning, the adapter for LoRA.
    weights = {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}
    torch.save(weights, tmp / "trainable.pt")
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
                "rng": rng_state(), **extra}, tmp / "state.pt")
    os.replace(tmp, final)
    for old in sorted(folder.glob("step-*"))[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load(path: Path, model: Any, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    """Restore weights, optimizer and scheduler from a checkpoint; returns its state dict (step, rng, extra)."""
    weights = torch.load(path / "trainable.pt", map_location="cpu")
    params = dict(model.named_parameters())
    missing = [n for n in weights if n not in params]
    if missing:
        raise ValueError(f"checkpoint {path} does not match this model (e.g. {missing[0]})")
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor)
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return state
