"""Offline pairwise work for the training loop: preference pairs, their reference log-probs, and the objective's loss.

    alignkit train dpo --beta 0.1
    alignkit train qempo --constraint kl --poet

The loop in alignkit.engine.train drives any `Work` (alignkit.engine.work); this one turns a micro-batch of pair
rows into per-pair losses with one forward over each prompt and its two responses (alignkit.engine.packing). The
objective is a pure function of (B,) log-probs; this module reads its capabilities (needs_reference,
length_normalized), never its name.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from alignkit import config as C
from alignkit.data.collate import collate_pairs
from alignkit.engine.batching import step_micro_batches, total_steps
from alignkit.engine.logprobs import pair_logprobs
from alignkit.engine.reference import fingerprint, frozen_pass, make_reference
from alignkit.engine.work import RunContext
from alignkit.errors import UserError

PAIR_COLUMNS = ("prompt_input_ids", "chosen_input_ids", "rejected_input_ids")


class PairwiseWork:
    """Preference pairs for `objective.pairwise_loss`; one loss term per pair."""

    def __init__(self, ctx: RunContext) -> None:
        cfg = ctx.cfg
        self.cfg, self.policy, self.transforms, self.device = cfg, ctx.policy, ctx.transforms, ctx.device
        self.dist, self.frozen = ctx.dist, ctx.inference_model()  # the model for passes without gradient
        self.loss_fn, self.options = ctx.objective.pairwise_loss, C.mode_options(ctx.options, "pairwise")
        # logps/* are logged as the objective compares them: means for a length-normalised loss, as TRL does
        self.mean_logps = ctx.objective.is_length_normalized(ctx.options)
        self.pad_id = ctx.tokenizer.pad_token_id
        self.pairs = load_pairs(cfg, ctx.tokenizer)
        self.n_train = split_for_eval(self.pairs, cfg.eval_split, cfg.seed)  # pairs[:n_train] train, rest held out
        self.global_batch = cfg.batch_size * ctx.dist.world  # --batch-size is per process
        ctx.dist.check_divides(self.n_train, cfg.batch_size, "pairs")
        self.micro_per_epoch = math.ceil(self.n_train / self.global_batch)
        self.total_steps = total_steps(cfg.max_steps, cfg.epochs, self.n_train, self.global_batch, cfg.grad_accum)
        needed = ctx.objective.requires_reference(ctx.options)
        self.reference = make_reference(ctx, needed, "pairwise")
        if self.reference.present and cfg.ref_mode == "precompute":
            # One pass over the data set before training (and before a resumed checkpoint replaces the starting
            # weights, which may be the reference): the reference never changes, so compute it once, each process
            # a share of the pairs.
            key = fingerprint(cfg.ref_model or cfg.model, ctx.dtype_name, self.pairs, ctx.transforms)
            with ctx.progress_bar() as bar, ctx.compute():
                task = bar.add_task("reference log-probs", total=len(self.pairs))
                self.reference.precompute(self.pairs, cfg.batch_size, self.pad_id, ctx.dist,
                                          ctx.output / "ref_logps.pt", key, progress=lambda n: bar.advance(task, n))

    # ---- the five calls the loop makes

    def micro_batches(self, step: int) -> list[list[int]]:
        """This process's rows of each micro-batch of optimizer step `step` (0-based): a pure function of the
        step, cut from the global micro-batch that 1 process × the global batch would read."""
        rows = step_micro_batches(self.cfg.seed, self.n_train, self.global_batch, self.cfg.grad_accum, step)
        return [self.dist.shard(r) for r in rows]

    def count(self, rows: list[int]) -> int:
        return len(rows)

    def losses(self, rows: list[int], step: int, micro: int) -> tuple[torch.Tensor, dict[str, float]]:
        """(B,) per-pair losses with gradient, and the micro-batch's metrics as sums over pairs."""
        batch = self.collate([self.pairs[i] for i in rows])
        policy_out = pair_logprobs(self.policy, batch, self.transforms, shared_prompt=self.cfg.shared_prompt,
                                   fused_head=self.cfg.fused_head)  # (B,)
        result = self.loss(policy_out, batch)
        return result.losses, metric_sums(result, policy_out, self.mean_logps)

    def finish(self, step: int, sums: dict[str, float], n: int) -> dict[str, float]:
        """The logged fields of a step from its sums (held-out metrics too when it is an evaluation step)."""
        record = {"epoch": round(step * self.cfg.grad_accum / self.micro_per_epoch, 4),
                  **{k: v / n for k, v in sums.items()}}
        evaluating = self.n_train < len(self.pairs) and (
            step == self.total_steps or (self.cfg.eval_steps and step % self.cfg.eval_steps == 0))
        if evaluating:
            record.update(self.evaluate())
        return record

    def state(self) -> dict[str, Any]:
        return {}  # everything pairwise follows from the step number

    def load_state(self, state: dict[str, Any]) -> None:
        pass

    # ---- helpers

    def collate(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device) for k, v in collate_pairs(rows, self.pad_id).items()}

    def loss(self, policy_out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> Any:
        ref_chosen, ref_rejected = self.reference.pairs(batch)  # (B,) each, or None without a reference
        return self.loss_fn(policy_out["chosen"], policy_out["rejected"], ref_chosen, ref_rejected,
                            chosen_tokens=policy_out["chosen_tokens"], rejected_tokens=policy_out["rejected_tokens"],
                            **self.options)

    def evaluate(self) -> dict[str, float]:
        """Mean loss and metrics over the held-out pairs (each process a share), logged as eval/<name>."""
        held_out = self.pairs[self.n_train:]
        mine = held_out[self.dist.rank::self.dist.world]
        sums: dict[str, float] = {}
        with frozen_pass(self.frozen):
            for start in range(0, len(mine), self.cfg.batch_size):
                batch = self.collate(mine[start:start + self.cfg.batch_size])
                out = pair_logprobs(self.frozen, batch, self.transforms, shared_prompt=self.cfg.shared_prompt,
                                    fused_head=self.cfg.fused_head)
                result = self.loss(out, batch)
                add_sums(sums, {"loss": result.losses.sum().item(), **metric_sums(result, out, self.mean_logps)})
        total = self.dist.sum({"pairs": float(len(mine)), **sums})
        pairs = total.pop("pairs")
        return {f"eval/{k}": v / pairs for k, v in total.items()}


# ----------------------------------------------------------------------------------------------------------
# Helpers the work reads as single lines.


def load_pairs(cfg: C.TrainConfig, tokenizer: Any) -> list[dict[str, Any]]:
    """The prepared pairs as plain lists (the loop indexes them by row), each with its row number `index`."""
    from alignkit.data.load import load_prepared

    data = load_prepared(cfg.data, tokenizer, kind="pairwise", max_length=cfg.max_length,
                         max_prompt_length=cfg.max_prompt_length)
    if len(data) == 0:
        raise UserError(f"no preference pairs in '{cfg.data}'")
    columns = {c: data[c] for c in PAIR_COLUMNS}
    return [{**{c: columns[c][i] for c in PAIR_COLUMNS}, "index": i} for i in range(len(data))]


def split_for_eval(pairs: list[dict[str, Any]], fraction: float, seed: int) -> int:
    """Move a seeded random `fraction` of the pairs to the end (held out) and renumber `index`; returns how many
    pairs remain for training. The reference cache covers both parts, keyed by the new index."""
    if fraction <= 0:
        return len(pairs)
    if not fraction < 1:
        raise UserError(f"--eval-split must be below 1, got {fraction}")
    n_eval = max(1, round(len(pairs) * fraction))
    if n_eval >= len(pairs):
        raise UserError(f"--eval-split {fraction} leaves no training pairs out of {len(pairs)}")
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed)).tolist()
    pairs[:] = [{**pairs[i], "index": new} for new, i in enumerate(order)]
    return len(pairs) - n_eval


def metric_sums(result: Any, policy_out: dict[str, torch.Tensor], mean_logps: bool = False) -> dict[str, float]:
    """A micro-batch's metrics as sums over pairs (the step divides by its pair count), TRL's names. logps/* are
    sequence sums, or per-token means for a length-normalised objective (TRL's CPOTrainer logs SimPO's so)."""
    chosen, rejected = result.chosen_rewards.float(), result.rejected_rewards.float()
    logps = {side: policy_out[side].detach() for side in ("chosen", "rejected")}  # (B,) each
    if mean_logps:
        logps = {side: v / policy_out[f"{side}_tokens"].clamp(min=1) for side, v in logps.items()}
    values = {
        "rewards/chosen": chosen.sum(), "rewards/rejected": rejected.sum(),
        "rewards/margins": (chosen - rejected).sum(), "rewards/accuracies": (chosen > rejected).float().sum(),
        "logps/chosen": logps["chosen"].sum(), "logps/rejected": logps["rejected"].sum(),
    }
    for k, v in result.extra.items():
        values[k] = torch.as_tensor(v).float().sum()
    return {k: float(v) for k, v in values.items()}


def add_sums(sums: dict[str, float], values: dict[str, float]) -> None:
    for k, v in values.items():
        sums[k] = sums.get(k, 0.0) + v
