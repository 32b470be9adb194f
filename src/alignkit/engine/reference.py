"""Reference log-probs for objectives that need them: precomputed once (and cached on disk) or every step.

The reference is, in order of preference: the LoRA policy with its adapter disabled (no second copy), the
starting policy itself before its first update (precompute without --ref-model), or a separate frozen model.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch

from alignkit.data.collate import collate_pairs
from alignkit.engine.logprobs import pair_logprobs


def fingerprint(ref_spec: str, dtype: str, pairs: list[dict], transforms: list[tuple[Any, Any]]) -> str:
    """Hash of everything the cached reference log-probs depend on: model, dtype, token ids and transforms."""
    h = hashlib.sha256()
    h.update(json.dumps({"ref": ref_spec, "dtype": dtype,
                         "transforms": [(t.name, dataclasses.asdict(o)) for t, o in transforms]},
                        sort_keys=True, default=str).encode())
    for p in pairs:
        h.update(json.dumps([p["prompt_input_ids"], p["chosen_input_ids"], p["rejected_input_ids"]]).encode())
    return h.hexdigest()[:16]


@contextmanager
def frozen_pass(model: Any) -> Iterator[None]:
    """The model as it is now, in eval mode, no gradients (the reference before the first update; sampling)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        yield
    model.train(was_training)


@contextmanager
def adapter_off(model: Any) -> Iterator[None]:
    """The PEFT model with its adapter disabled (the reference for --lora), in eval mode, no gradients."""
    was_training = model.training
    model.eval()
    with model.disable_adapter(), torch.no_grad():
        yield
    model.train(was_training)


class Reference:
    """Gives (ref_chosen (B,), ref_rejected (B,)) for a batch, or (None, None) when the objective needs none."""

    def __init__(self, model: Any | None, context: Callable[[], Any] | None, cache: dict[str, torch.Tensor] | None,
                 transforms: list[tuple[Any, Any]]):
        self.model, self.context, self.cache, self.transforms = model, context, cache, transforms

    @classmethod
    def none(cls) -> Reference:
        return cls(None, None, None, [])

    def __call__(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if self.cache is not None:
            idx = batch["index"].cpu()
            device = batch["input_ids"].device
            return self.cache["chosen"][idx].to(device), self.cache["rejected"][idx].to(device)
        if self.model is None:
            return None, None
        with (self.context or nullcontext)():
            out = pair_logprobs(self.model, batch, self.transforms)
        return out["chosen"].detach(), out["rejected"].detach()

    def precompute(self, pairs: list[dict], batch_size: int, pad_id: int, device: Any, cache_file: Path,
                   key: str, progress: Callable[[int], None] = lambda n: None) -> None:
        """Compute every pair's reference log-probs once, in data-set order; reuse cache_file if its key matches."""
        if cache_file.is_file():
            stored = torch.load(cache_file, map_location="cpu")
            if stored.get("fingerprint") == key and len(stored["chosen"]) == len(pairs):
                self.cache = stored
                return
        chosen, rejected = [], []
        for start in range(0, len(pairs), batch_size):
            rows = pairs[start:start + batch_size]
            batch = {k: v.to(device) for k, v in collate_pairs(rows, pad_id).items()}
            c, r = self(batch)
            chosen.append(c.float().cpu())
            rejected.append(r.float().cpu())
            progress(len(rows))
        self.cache = {"fingerprint": key, "chosen": torch.cat(chosen), "rejected": torch.cat(rejected)}
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        torch.save(self.cache, tmp)
        tmp.replace(cache_file)
