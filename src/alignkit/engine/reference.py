"""The reference model of a run, one object for both training modes: its log-probs for pairs (precomputed once and
cached on disk, or every step) and for sampled completions.

The reference is, in order of preference: the LoRA policy with its adapter disabled (no second copy), the
starting policy itself before its first update (pairs precomputed without --ref-model), or a separate frozen
model (--ref-model, or a copy of the starting model). An objective whose record says it needs none
(`needs_reference`) gets `Reference.none()`, except online with a --ref-model, whose KL is then logged.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch

from alignkit.data.collate import collate_pairs
from alignkit.engine.logprobs import pair_logprobs, response_logprobs
from alignkit.engine.models import freeze, load_model
from alignkit.engine.onednn_linear import OneDnnLinear


def fingerprint(ref_spec: str, dtype: str, pairs: list[dict], transforms: list[tuple[Any, Any]]) -> str:
    """Hash of everything the cached reference log-probs depend on: model, dtype, token ids and transforms."""
    h = hashlib.sha256()
    h.update(json.dumps({"ref": ref_spec, "dtype": dtype,
                         "transforms": [(t.name, dataclasses.asdict(o)) for t, o in transforms]},
                        sort_keys=True, default=str).encode())
    for p in pairs:
        h.update(json.dumps([p["prompt_input_ids"], p["chosen_input_ids"], p["rejected_input_ids"]]).encode())
    return h.hexdigest()[:16]


def set_training(model: Any, training: bool) -> None:
    """`model.train(training)` as dropout reads it: every module's flag, and nothing else. transformers 5.x turns
    its hub kernels on by default and re-kernelizes the whole model on every mode change (0.33 ms a switch on the
    toy model, machine F; a third of a decode step's forward there), and online training switches twice a step.
    The kernels mapped for training also run without gradients, so the sampler runs the layers the update runs."""
    for module in model.modules():
        module.training = training


@contextmanager
def frozen_pass(model: Any) -> Iterator[None]:
    """The model as it is now, in eval mode, no gradients (the reference before the first update; sampling)."""
    was_training = model.training
    set_training(model, False)
    try:
        with torch.no_grad():
            yield
    finally:
        set_training(model, was_training)


@contextmanager
def adapter_off(model: Any) -> Iterator[None]:
    """The PEFT model with its adapter disabled (the reference for --lora), in eval mode, no gradients."""
    was_training = model.training
    set_training(model, False)
    try:
        with model.disable_adapter(), torch.no_grad():
            yield
    finally:
        set_training(model, was_training)


class Reference:
    """Reference log-probs of a batch: `pairs` for preference pairs, `sequences` for sampled completions; both are
    None when the run has no reference."""

    def __init__(self, model: Any | None, context: Callable[[], Any] | None, transforms: list[tuple[Any, Any]],
                 shared_prompt: bool = True, fused_head: bool = True):
        self.model, self.context, self.transforms = model, context, transforms
        # the forward's layout (alignkit.engine.packing) and how its LM head is read, as the policy's
        self.shared_prompt, self.fused_head = shared_prompt, fused_head
        self.cache: dict[str, torch.Tensor] | None = None

    @classmethod
    def none(cls) -> Reference:
        return cls(None, None, [])

    @property
    def present(self) -> bool:
        return self.model is not None or self.cache is not None

    def pairs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(ref_chosen (B,), ref_rejected (B,)) summed over the (transformed) response masks, detached."""
        if self.cache is not None:
            idx = batch["index"].cpu()
            device = batch["input_ids"].device
            return self.cache["chosen"][idx].to(device), self.cache["rejected"][idx].to(device)
        if self.model is None:
            return None, None
        with (self.context or nullcontext)():
            out = pair_logprobs(self.model, batch, self.transforms, shared_prompt=self.shared_prompt,
                                fused_head=self.fused_head)
        return out["chosen"].detach(), out["rejected"].detach()

    def sequences(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """(R,) summed response log-probs of each row of a collated batch (online completions), detached."""
        if self.model is None:
            return None
        with (self.context or nullcontext)():
            logps, mask = response_logprobs(self.model, batch, shared_prompt=self.shared_prompt,
                                            fused_head=self.fused_head)  # (R, T)
        return (logps * mask).sum(-1).detach()

    def precompute(self, pairs: list[dict], batch_size: int, pad_id: int, dist: Any, cache_file: Path,
                   key: str, progress: Callable[[int], None] = lambda n: None) -> None:
        """Compute every pair's reference log-probs once, each process a strided share of the pairs, gathered so
        that every process holds them all in data-set order; reuse cache_file if its key matches. The cache answers
        from then on, so a separate reference model can be freed."""
        if cache_file.is_file():
            stored = torch.load(cache_file, map_location="cpu")
            if stored.get("fingerprint") == key and len(stored["chosen"]) == len(pairs):
                self.cache, self.model = stored, None
                return
        mine = list(range(dist.rank, len(pairs), dist.world))
        # Every process runs the same number of batches (a sharded model's forward is a collective step): a short
        # share repeats its last pair, and the repeat is dropped.
        rounds = math.ceil(math.ceil(len(pairs) / dist.world) / batch_size)
        padded = (mine + mine[-1:] * (rounds * batch_size - len(mine)))[:rounds * batch_size] if mine else []
        values: dict[int, tuple[float, float]] = {}
        for start in range(0, len(padded), batch_size):
            index = padded[start:start + batch_size]
            batch = {k: v.to(dist.device) for k, v in collate_pairs([pairs[i] for i in index], pad_id).items()}
            c, r = self.pairs(batch)
            values.update(zip(index, zip(c.float().cpu().tolist(), r.float().cpu().tolist())))
            progress(len(set(index)) * dist.world)
        values = gather_values(values, dist)
        self.cache = {"fingerprint": key, "chosen": torch.tensor([values[i][0] for i in range(len(pairs))]),
                      "rejected": torch.tensor([values[i][1] for i in range(len(pairs))])}
        self.model = None
        if dist.is_main:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(".tmp")
            torch.save(self.cache, tmp)
            tmp.replace(cache_file)


def gather_values(values: dict[int, Any], dist: Any) -> dict[int, Any]:
    """Every process's {pair index: value} merged on every process."""
    if dist.world == 1:
        return values
    from accelerate.utils import gather_object

    merged: dict[int, Any] = {}
    for part in gather_object([values]):
        merged.update(part)
    return merged


def make_reference(ctx: Any, needed: bool, mode: str) -> Reference:
    """The run's reference (see the module docstring), from the work's RunContext. Online the policy moves every
    step, so the starting policy cannot stand in for it: without LoRA, a reference needed online costs a second
    model. A separate model sits on this process's device (sharded by accelerate when the run shards)."""
    cfg, transforms = ctx.cfg, ctx.transforms
    reference = functools.partial(Reference, transforms=transforms, shared_prompt=cfg.shared_prompt,
                                  fused_head=cfg.fused_head)
    if not needed and (cfg.ref_model is None or mode == "pairwise"):  # online, a named one still gives the KL
        return Reference.none()
    policy = ctx.inference_model()
    if cfg.lora and cfg.ref_model is None:
        return reference(policy, lambda: adapter_off(ctx.bare))
    if mode == "pairwise" and cfg.ref_mode == "precompute" and cfg.ref_model is None:
        # Before the first update the policy is the reference: no second copy is loaded.
        return reference(policy, lambda: frozen_pass(policy))
    ref = freeze(load_model(cfg.ref_model or cfg.model, cfg.dtype, "cpu")).to(ctx.device)
    OneDnnLinear.install(ref, cfg.onednn, ctx.device, lambda _: None, ctx.dist.sharded)  # the policy said any note
    if ctx.dist.sharded:
        ref = ctx.dist.accelerator.prepare_model(ref, evaluation_mode=True)
    return reference(ref, torch.no_grad)
