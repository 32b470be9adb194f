"""One training loop for every objective: offline pairwise and online sampled.

    alignkit train dpo --beta 0.1 --max-steps 50
    alignkit train qempo --constraint kl --lora --output runs/qempo
    alignkit train qempo --online --reward toy --min-reward 0.85 --max-steps 200

Read top to bottom: load the policy and the optimizer; build the work (alignkit.engine.work: pairwise preference
pairs or online sampled groups, chosen by --online and the objective's modes, never its name); then each
optimizer step accumulates grad_accum micro-batches, clips, steps, logs one line of metrics.jsonl and maybe
checkpoints. The training lifecycle hooks (alignkit.hookspecs: train_started, step_logged, train_finished) let
plugins watch a run: the toy world's exact before/after figures and logging backends hang there.
"""
from __future__ import annotations

import json
import math
import random
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable

import torch

from alignkit import config as C
from alignkit import plugins
from alignkit.engine import checkpoint
from alignkit.engine.models import add_lora, load_model, load_tokenizer, pick_device, pick_dtype
from alignkit.engine.work import RunContext, make_work
from alignkit.errors import UserError
from alignkit.registry import Run

# Test seam: called with the step number after each completed optimizer step (tests kill the process here).
_after_step: Callable[[int], None] | None = None


def run(train_cfg: C.TrainConfig, objective: Any, objective_options: Any,
        transforms: list[tuple[Any, Any]], resolved: dict[str, Any]) -> Path:
    cfg = train_cfg
    mode = "online" if cfg.online else "pairwise"
    if mode not in objective.modes:
        raise UserError(f"objective '{objective.name}' has no {mode} training (it has: {', '.join(objective.modes)})"
                        + ("; drop --online" if cfg.online else "; add --online"))
    if cfg.online and transforms:
        raise UserError(f"--{transforms[0][0].name} transforms preference pairs; online training has none")
    C.check_mode(cfg, mode)
    C.check_mode(objective_options, mode)
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    tokenizer = load_tokenizer(cfg.model)

    # ---- the policy trains. bf16 compute keeps fp32 master weights for full fine-tuning (an AdamW step of lr
    # 5e-6 is below bf16's resolution); LoRA keeps a bf16 base, and PEFT keeps the adapter in fp32.
    bf16 = pick_dtype(cfg.dtype, device) == torch.bfloat16
    policy = load_model(cfg.model, "bf16" if bf16 and cfg.lora else "fp32", cfg.device)
    compute = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else nullcontext
    if cfg.lora:
        policy = add_lora(policy, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules)
    policy.train()

    # ---- the work: what a micro-batch reads and how it becomes losses (reference log-probs are computed here,
    # before a resumed checkpoint replaces the starting weights, which may be the reference)
    work = make_work(mode, RunContext(cfg, objective, objective_options, transforms, policy, tokenizer, device,
                                      compute, "bf16" if bf16 else "fp32", output, progress_bar))
    total_steps = work.total_steps
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = make_scheduler(optimizer, cfg.lr_schedule, cfg.warmup_steps, total_steps)

    # ---- resume: weights, optimizer, scheduler, RNG, the work's state; the data position follows from the step
    step = 0
    last_checkpoint = checkpoint.newest(output) if cfg.resume else None
    if cfg.resume and last_checkpoint is None:
        print(f"no checkpoint in {output / 'checkpoints'}; starting from step 0")
    if last_checkpoint is not None:
        state = checkpoint.load(last_checkpoint, policy, optimizer, scheduler)
        step = state["step"]
        checkpoint.set_rng_state(state["rng"])
        work.load_state(state.get("work", {}))
        print(f"resuming from {last_checkpoint} (step {step} of {total_steps})")
    metrics_file = output / "metrics.jsonl"
    keep_metrics_until(metrics_file, step)
    run_info = Run(cfg, objective.name, resolved, output, tokenizer, policy, total_steps)
    plugins.notify("train_started", run=run_info)

    with progress_bar() as bar:
        task = bar.add_task(f"train {objective.name}", total=total_steps, completed=step)
        try:
            while step < total_steps:
                # ---- one optimizer step: grad_accum micro-batches, losses weighted by terms so that
                # 8 × 1 and 2 × 4 give the same update
                micro = work.micro_batches(step)
                n = sum(work.count(rows) for rows in micro)
                sums: dict[str, float] = {}
                loss_value = 0.0
                for i, rows in enumerate(micro):
                    with compute():
                        losses, metric_sums = work.losses(rows, step, i)  # (n_i,) with gradient
                    loss = losses.sum() / n
                    if not torch.isfinite(loss):
                        raise diverged(step + 1, loss.item(), last_checkpoint, cfg.learning_rate)
                    loss.backward()
                    loss_value += loss.item()
                    for k, v in metric_sums.items():
                        sums[k] = sums.get(k, 0.0) + v
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    params, cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf"))
                if not torch.isfinite(grad_norm):
                    raise diverged(step + 1, grad_norm.item(), last_checkpoint, cfg.learning_rate, "gradient norm")
                learning_rate = scheduler.get_last_lr()[0]
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1

                # ---- log (every step's finish runs: it may update the work, e.g. dual ascent), checkpoint
                with compute():
                    record = {"step": step, **work.finish(step, sums, n), "loss": loss_value,
                              "grad_norm": grad_norm.item(), "learning_rate": learning_rate}
                if step % max(cfg.logging_steps, 1) == 0 or step == total_steps or any(k.startswith("eval/")
                                                                                      for k in record):
                    with metrics_file.open("a") as f:
                        f.write(json.dumps(record) + "\n")
                    plugins.notify("step_logged", run=run_info, record=record)
                    bar.update(task, description=f"train {objective.name} loss {loss_value:.4f}")
                if cfg.save_steps and (step % cfg.save_steps == 0 or step == total_steps):
                    last_checkpoint = checkpoint.save(output, step, policy, optimizer, scheduler,
                                                      {"micro_step": step * cfg.grad_accum, "work": work.state()})
                bar.update(task, completed=step)
                if _after_step is not None:
                    _after_step(step)
        except torch.cuda.OutOfMemoryError as exc:
            what = "--batch-size" if not cfg.online else "--batch-size or --group-size or --max-new-tokens"
            raise UserError(f"out of GPU memory at step {step + 1} with --batch-size {cfg.batch_size}: lower "
                            f"{what} and raise --grad-accum to keep the effective batch, or train with --lora"
                            ) from exc

    save_final(output, policy, tokenizer, resolved, C.model_info(cfg.model))
    print(f"saved {'the LoRA adapter' if cfg.lora else 'the model'} to {output} ({step} steps; metrics in "
          f"{metrics_file})")
    plugins.notify("train_finished", run=run_info)
    return output


# ----------------------------------------------------------------------------------------------------------
# Helpers the loop reads as single lines.


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


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


def save_final(output: Path, policy: Any, tokenizer: Any, resolved: dict[str, Any], info: dict[str, Any]) -> None:
    """A folder from_pretrained can load (or a PEFT adapter naming its base), the tokenizer, alignkit.yaml, and the
    starting model's alignkit-model.json: what the model says about itself (its world, its defaults) still holds."""
    policy.save_pretrained(output)
    tokenizer.save_pretrained(output)
    (output / "alignkit.yaml").write_text(C.dump_yaml(resolved))
    if info:
        (output / C.MODEL_INFO).write_text(json.dumps(info, indent=1) + "\n")
