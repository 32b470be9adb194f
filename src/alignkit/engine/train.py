"""One training loop for pairwise (offline) preference objectives.

    alignkit train dpo --beta 0.1 --max-steps 50
    alignkit train qempo --constraint kl --lora --output runs/qempo

Read top to bottom: load the policy (and its reference), the pairs and the optimizer; optionally precompute the
reference log-probs; then each optimizer step accumulates grad_accum micro-batches (one concatenated forward
over chosen and rejected rows each), clips, steps, logs one line of metrics.jsonl and maybe checkpoints.
The objective is a pure function of (B,) log-probs; the loop reads its capabilities, never its name.
"""
from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable

import torch

from alignkit import config as C
from alignkit.data.collate import collate_pairs
from alignkit.engine import checkpoint
from alignkit.engine.logprobs import pair_logprobs
from alignkit.engine.models import add_lora, freeze, load_model, load_tokenizer, pick_device, pick_dtype
from alignkit.engine.reference import Reference, adapter_off, fingerprint
from alignkit.errors import UserError

# Test seam: called with the step number after each completed optimizer step (tests kill the process here).
_after_step: Callable[[int], None] | None = None

PAIR_COLUMNS = ("prompt_input_ids", "chosen_input_ids", "rejected_input_ids")


def run(train_cfg: C.TrainConfig, objective: Any, objective_options: Any,
        transforms: list[tuple[Any, Any]], resolved: dict[str, Any]) -> Path:
    cfg = train_cfg
    if cfg.online or "pairwise" not in objective.modes:
        raise UserError(f"objective '{objective.name}' needs online training, which this build's engine does not "
                        "run yet; choose a pairwise objective (alignkit plugins lists them)")
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)

    # ---- data: canonical tokenized pairs, each remembering its row number (the reference cache's key)
    tokenizer = load_tokenizer(cfg.model)
    pairs = load_pairs(cfg, tokenizer)
    n_train = split_for_eval(pairs, cfg.eval_split, cfg.seed)  # pairs[:n_train] train, the rest is held out
    micro_per_epoch = math.ceil(n_train / cfg.batch_size)
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * micro_per_epoch / cfg.grad_accum))

    # ---- models: the policy trains; the reference is the adapter-off policy, a precomputed cache, or a copy
    # bf16 compute keeps fp32 master weights for full fine-tuning (an AdamW step of lr 5e-6 is below bf16's
    # resolution); LoRA keeps a bf16 base, and PEFT keeps the adapter in fp32.
    bf16 = pick_dtype(cfg.dtype, device) == torch.bfloat16
    policy = load_model(cfg.model, "bf16" if bf16 and cfg.lora else "fp32", cfg.device)
    compute = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else nullcontext
    if cfg.lora:
        policy = add_lora(policy, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules)
    policy.train()
    reference = make_reference(cfg, objective.requires_reference(objective_options), policy, transforms)

    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = make_scheduler(optimizer, cfg.lr_schedule, cfg.warmup_steps, total_steps)

    pad_id = tokenizer.pad_token_id
    if reference.model is not None and cfg.ref_mode == "precompute":
        # One pass over the data set before training (and before a resumed checkpoint replaces the starting
        # weights, which may be the reference): the reference never changes, so compute it once.
        key = fingerprint(cfg.ref_model or cfg.model, "bf16" if bf16 else "fp32", pairs, transforms)
        with progress_bar() as bar, compute():
            task = bar.add_task("reference log-probs", total=len(pairs))
            reference.precompute(pairs, cfg.batch_size, pad_id, device, output / "ref_logps.pt", key,
                                 progress=lambda n: bar.advance(task, n))
        reference.model = None  # the cache answers from now on; a separate reference copy can be freed

    # ---- resume: weights, optimizer, scheduler, RNG; the data position follows from the step number
    step = 0
    last_checkpoint = checkpoint.newest(output) if cfg.resume else None
    if cfg.resume and last_checkpoint is None:
        print(f"no checkpoint in {output / 'checkpoints'}; starting from step 0")
    if last_checkpoint is not None:
        state = checkpoint.load(last_checkpoint, policy, optimizer, scheduler)
        step = state["step"]
        checkpoint.set_rng_state(state["rng"])
        print(f"resuming from {last_checkpoint} (step {step} of {total_steps})")
    metrics_file = output / "metrics.jsonl"
    keep_metrics_until(metrics_file, step)

    options = dataclasses.asdict(objective_options)
    loss_fn = objective.pairwise_loss

    with progress_bar() as bar:
        task = bar.add_task(f"train {objective.name}", total=total_steps, completed=step)
        try:
            while step < total_steps:
                # ---- one optimizer step: grad_accum micro-batches, losses weighted by pairs so that
                # 8 × 1 and 2 × 4 give the same update
                micro = [micro_batch_rows(cfg.seed, n_train, cfg.batch_size, step * cfg.grad_accum + i)
                         for i in range(cfg.grad_accum)]
                n_pairs = sum(len(m) for m in micro)
                sums: dict[str, float] = {}
                for rows in micro:
                    batch = {k: v.to(device) for k, v in collate_pairs([pairs[i] for i in rows], pad_id).items()}
                    with compute():
                        policy_out = pair_logprobs(policy, batch, transforms)  # (B,) sums and token counts
                        ref_chosen, ref_rejected = reference(batch)
                        result = loss_fn(policy_out["chosen"], policy_out["rejected"], ref_chosen, ref_rejected,
                                         chosen_tokens=policy_out["chosen_tokens"],
                                         rejected_tokens=policy_out["rejected_tokens"], **options)
                    loss = result.losses.sum() / n_pairs
                    if not torch.isfinite(loss):
                        raise diverged(step + 1, loss.item(), last_checkpoint, cfg.learning_rate)
                    loss.backward()
                    add_metrics(sums, loss.item(), result, policy_out)
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    params, cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf"))
                if not torch.isfinite(grad_norm):
                    raise diverged(step + 1, grad_norm.item(), last_checkpoint, cfg.learning_rate, "gradient norm")
                learning_rate = scheduler.get_last_lr()[0]
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1

                # ---- log, checkpoint
                evaluating = n_train < len(pairs) and (
                    step == total_steps or (cfg.eval_steps and step % cfg.eval_steps == 0))
                if step % max(cfg.logging_steps, 1) == 0 or step == total_steps or evaluating:
                    record = {"step": step, "epoch": round(step * cfg.grad_accum / micro_per_epoch, 4),
                              **{k: v / n_pairs for k, v in sums.items()},
                              "grad_norm": grad_norm.item(), "learning_rate": learning_rate}
                    record["loss"] = sums["loss"]  # already the step's mean loss
                    if evaluating:
                        with compute():
                            held_out = evaluate(policy, pairs[n_train:], reference, loss_fn, options, transforms,
                                                cfg.batch_size, pad_id, device)
                        record.update(held_out)
                    with metrics_file.open("a") as f:
                        f.write(json.dumps(record) + "\n")
                    bar.update(task, description=f"train {objective.name} loss {record['loss']:.4f}")
                if cfg.save_steps and (step % cfg.save_steps == 0 or step == total_steps):
                    last_checkpoint = checkpoint.save(output, step, policy, optimizer, scheduler,
                                                      {"micro_step": step * cfg.grad_accum})
                bar.update(task, completed=step)
                if _after_step is not None:
                    _after_step(step)
        except torch.cuda.OutOfMemoryError as exc:
            raise UserError(f"out of GPU memory at step {step + 1} with --batch-size {cfg.batch_size}: lower "
                            "--batch-size and raise --grad-accum to keep the effective batch, or train with --lora"
                            ) from exc

    save_final(output, policy, tokenizer, resolved)
    print(f"saved {'the LoRA adapter' if cfg.lora else 'the model'} to {output} ({step} steps; metrics in "
          f"{metrics_file})")
    return output


# ----------------------------------------------------------------------------------------------------------
# Helpers the loop reads as single lines.


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


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


def evaluate(policy: Any, pairs: list[dict], reference: Reference, loss_fn: Any, options: dict, transforms: list,
             batch_size: int, pad_id: int, device: Any) -> dict[str, float]:
    """Mean loss and metrics over the held-out pairs, logged as eval/<name>."""
    sums: dict[str, float] = {}
    with frozen_pass(policy):
        for start in range(0, len(pairs), batch_size):
            batch = {k: v.to(device) for k, v in collate_pairs(pairs[start:start + batch_size], pad_id).items()}
            out = pair_logprobs(policy, batch, transforms)
            ref_chosen, ref_rejected = reference(batch)
            result = loss_fn(out["chosen"], out["rejected"], ref_chosen, ref_rejected,
                             chosen_tokens=out["chosen_tokens"], rejected_tokens=out["rejected_tokens"], **options)
            add_metrics(sums, result.losses.sum().item(), result, out)
    return {f"eval/{k}": v / len(pairs) for k, v in sums.items()}


def micro_batch_rows(seed: int, n: int, batch_size: int, micro_step: int) -> list[int]:
    """Row numbers of global micro-batch `micro_step`: each epoch is a fresh seeded permutation, so the data
    position is a pure function of the step and a resumed run sees exactly the batches it would have."""
    per_epoch = math.ceil(n / batch_size)
    epoch, j = divmod(micro_step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return order[j * batch_size:(j + 1) * batch_size].tolist()


def make_reference(cfg: C.TrainConfig, needed: bool, policy: Any, transforms: list) -> Reference:
    if not needed:
        return Reference.none()
    if cfg.lora and cfg.ref_model is None:
        return Reference(policy, lambda: adapter_off(policy), None, transforms)
    if cfg.ref_mode == "precompute" and cfg.ref_model is None:
        # Before the first update the policy is the reference: no second copy is loaded.
        return Reference(policy, lambda: frozen_pass(policy), None, transforms)
    ref = freeze(load_model(cfg.ref_model or cfg.model, cfg.dtype, cfg.device))
    return Reference(ref, torch.no_grad, None, transforms)


@contextmanager
def frozen_pass(model: Any):
    was_training = model.training
    model.eval()
    with torch.no_grad():
        yield
    model.train(was_training)


def make_scheduler(optimizer: Any, schedule: str, warmup: int, total: int) -> Any:
    """Linear warm-up over `warmup` steps, then constant / linear decay to 0 / cosine decay to 0 at `total`."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        if schedule == "linear":
            return max(0.0, 1.0 - progress)
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def add_metrics(sums: dict[str, float], loss: float, result: Any, policy_out: dict[str, torch.Tensor]) -> None:
    """Accumulate a micro-batch's metrics as sums over pairs (the step divides by its pair count)."""
    chosen, rejected = result.chosen_rewards.float(), result.rejected_rewards.float()
    values = {
        "rewards/chosen": chosen.sum(), "rewards/rejected": rejected.sum(),
        "rewards/margins": (chosen - rejected).sum(), "rewards/accuracies": (chosen > rejected).float().sum(),
        "logps/chosen": policy_out["chosen"].detach().sum(), "logps/rejected": policy_out["rejected"].detach().sum(),
    }
    for k, v in result.extra.items():
        values[k] = torch.as_tensor(v).float().sum()
    sums["loss"] = sums.get("loss", 0.0) + loss
    for k, v in values.items():
        sums[k] = sums.get(k, 0.0) + float(v)


def diverged(step: int, value: float, last_checkpoint: Path | None, lr: float, what: str = "loss") -> UserError:
    kept = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint was written yet"
    return UserError(f"training diverged: the {what} is {value} at step {step}; {kept}. Try a lower "
                     f"--learning-rate (now {lr:g}) or a smaller --max-grad-norm, then --resume")


def keep_metrics_until(metrics_file: Path, step: int) -> None:
    """A resumed run rewrites the steps after its checkpoint; a fresh run starts an empty file."""
    if step == 0 or not metrics_file.is_file():
        metrics_file.write_text("")
        return
    lines = [ln for ln in metrics_file.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
    metrics_file.write_text("".join(ln + "\n" for ln in lines))


@contextmanager
def progress_bar():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=False) as bar:
        yield bar


def save_final(output: Path, policy: Any, tokenizer: Any, resolved: dict[str, Any]) -> None:
    """A folder from_pretrained can load (or a PEFT adapter naming its base), the tokenizer and alignkit.yaml."""
    policy.save_pretrained(output)
    tokenizer.save_pretrained(output)
    (output / "alignkit.yaml").write_text(C.dump_yaml(resolved))
