"""One training loop for every objective, offline pairwise and online sampled, on one process or many.

    alignkit train dpo --beta 0.1 --max-steps 50
    alignkit train qempo --constraint kl --lora --output runs/qempo
    alignkit train qempo --online --reward toy --min-reward 0.85 --max-steps 200
    torchrun --standalone --nproc_per_node 2 -m alignkit train dpo --batch-size 4

Read top to bottom: make the Accelerator (alignkit.engine.distributed); load the policy; build the work
(alignkit.engine.work: pairwise preference pairs or online sampled groups, chosen by --online and the objective's
modes, never its name); let accelerate prepare model, optimizer and scheduler; decide from the run folder whether
this run starts or resumes (alignkit.engine.run_folder: a folder holds one run); then each optimizer step
accumulates grad_accum micro-batches (gradients synchronised on the last), clips, steps (inside the backward,
parameter by parameter, where that is exact: alignkit.engine.step_in_backward), logs one line of
metrics.jsonl and maybe checkpoints. The training lifecycle hooks (alignkit.hookspecs: train_started,
step_logged, train_finished) let plugins watch a run from the main process: the toy world's exact before/after
figures and logging backends hang there.
"""
from __future__ import annotations

import math
import random
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable

import torch

from alignkit import config as C
from alignkit import plugins
from alignkit.data.load import source_identity
from alignkit.data.sources import missing
from alignkit.engine import checkpoint, run_folder
from alignkit.engine.distributed import Dist, make_accelerator
from alignkit.engine.heap import HeapRelease
from alignkit.engine.models import add_lora, load_model, load_tokenizer, own_weights, pick_device, pick_dtype
from alignkit.engine.onednn_linear import OneDnnLinear
from alignkit.engine.step_in_backward import StepInBackward
from alignkit.engine.stopping import StopRequest
from alignkit.engine.tied_embedding import RowEmbeddingGrad
from alignkit.engine.work import RunContext, make_work
from alignkit.errors import Interrupted, UserError
from alignkit.model_info import model_info
from alignkit.outputs import check_output
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
    check_output(cfg.output, "folder")
    data_spec = cfg.prompts if cfg.online else cfg.data
    if data_spec and missing(data_spec):  # before the model loads: a mistyped path fails at once
        raise UserError(f"'{data_spec}' does not exist (--{'prompts' if cfg.online else 'data'})")
    output = Path(cfg.output)

    # ---- one process or many: accelerate places devices, runs mixed precision and wraps the model
    bf16 = pick_dtype(cfg.dtype, pick_device(cfg.device)) == torch.bfloat16
    accelerator = make_accelerator(cfg.device, bf16)
    dist = Dist(accelerator)
    fingerprint = checkpoint.run_fingerprint(resolved, dist.world, source_identity(cfg.prompts if cfg.online
                                                                                   else cfg.data))
    resume_from = start_in_folder(dist, output, fingerprint, cfg)
    seed_everything(cfg.seed)
    tokenizer = load_tokenizer(cfg.model)

    # ---- the policy trains. bf16 compute keeps fp32 master weights for full fine-tuning (an AdamW step of lr
    # 5e-6 is below bf16's resolution); LoRA keeps a bf16 base, and PEFT keeps the adapter in fp32.
    policy = load_model(cfg.model, "bf16" if bf16 and cfg.lora else "fp32", "cpu")
    if cfg.lora:
        policy = add_lora(policy, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules)
    if dist.device.type == "cpu":  # trained weights out of the file's copy-on-write pages before the first step
        own_weights(policy)
    policy.train()
    # a tied embedding's lookup adds its gradient rows into the LM head's (no dense (V, D) temporaries at the peak);
    # its hook on the weight comes before StepInBackward's, which must see the whole gradient
    RowEmbeddingGrad.where_exact(policy, cfg, dist)
    OneDnnLinear.install(policy, cfg.onednn, dist.device, dist.print, dist.sharded)  # --onednn: CPU matmul kernels
    optimizer = adamw([p for p in policy.parameters() if p.requires_grad], cfg, fused=fused_adamw(dist, accelerator))
    # DDP / FSDP2 / DeepSpeed, as the launch configured; `policy` stays the bare model (sampling, saving)
    model, optimizer = accelerator.prepare(policy, optimizer)
    policy = accelerator.unwrap_model(model)
    params = [p for p in model.parameters() if p.requires_grad]
    # where it is exact (no clipping, no accumulation, one process), AdamW steps each parameter inside the backward
    stepper = StepInBackward.where_exact(optimizer, params, cfg, dist)
    # --release-memory: glibc's free heap pages go back to the system as the backward frees activations
    release = HeapRelease.where_useful(params, cfg, dist)

    # ---- the work: what a micro-batch reads and how it becomes losses (reference log-probs are computed here,
    # before a resumed checkpoint replaces the starting weights, which may be the reference)
    work = make_work(mode, RunContext(cfg, objective, objective_options, transforms, model, policy, tokenizer, dist,
                                      accelerator.autocast, "bf16" if bf16 else "fp32", output,
                                      progress_bar(dist.is_main)))
    total_steps = work.total_steps
    scheduler = make_scheduler(optimizer, cfg.lr_schedule, cfg.warmup_steps, total_steps)
    scheduler = accelerator.prepare(scheduler)
    loop = checkpoint.LoopState()
    accelerator.register_for_checkpointing(loop)
    checkpoint.keep_trainable_only(accelerator)

    # ---- resume: weights, optimizer, scheduler, every process's RNG, the work's state; the data position follows
    # from the step
    if resume_from is not None:
        checkpoint.load(resume_from, accelerator)
        work.load_state(loop.work)
        dist.print(f"resuming from {resume_from} (step {loop.step} of {total_steps})")
    step = loop.step
    last_checkpoint = resume_from
    metrics = run_folder.MetricsLog(output, step, dist.is_main)
    run_info = Run(cfg, objective.name, resolved, output, tokenizer, policy, total_steps)
    dist.print(f"global batch: {cfg.batch_size} per process × {dist.world} process(es) × {cfg.grad_accum} "
               f"accumulation = {cfg.batch_size * dist.world * cfg.grad_accum} "
               f"{'prompts' if cfg.online else 'pairs'} a step; {total_steps} steps")
    if dist.is_main:
        plugins.notify("train_started", run=run_info)

    with progress_bar(dist.is_main)() as bar, StopRequest() as stop:
        task = bar.add_task(f"train {objective.name}", total=total_steps, completed=step)
        try:
            while step < total_steps:
                # ---- one optimizer step: grad_accum micro-batches; every term of the global step weighs 1/N, so
                # 8 × 1, 2 × 4 and 2 processes × 4 give the same update
                micro = work.micro_batches(step)  # this process's rows of each micro-batch
                n = dist.sum({"n": sum(work.count(rows) for rows in micro)})["n"]
                sums: dict[str, float] = {}
                for i, rows in enumerate(micro):
                    failure = None
                    # gradients are synchronised across processes on the last micro-batch only
                    with nullcontext() if i == len(micro) - 1 else accelerator.no_sync(model):
                        try:
                            with accelerator.autocast():
                                losses, metric_sums = work.losses(rows, step, i)  # (n_i,) with gradient
                            accelerator.backward(losses.sum() * dist.world / n)  # DDP averages over processes
                        except UserError as exc:  # a user error on one process must end every process
                            failure = str(exc)
                    failure = dist.first_error(failure)
                    if failure is not None:
                        raise UserError(failure)
                    add_sums(sums, {"loss": losses.detach().sum().item(), **metric_sums})
                grad_norm = stepper.take_norm() if stepper else accelerator.clip_grad_norm_(
                    params, cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf"))
                sums = dist.sum(sums)  # the global step's sums, the same on every process
                loss_value = sums.pop("loss") / n
                for value, what in ((loss_value, "loss"), (float(grad_norm), "gradient norm")):
                    if not math.isfinite(value):  # every process sees the same global value and stops alike
                        raise diverged(step + 1, value, last_checkpoint, cfg.learning_rate, what)
                learning_rate = scheduler.get_last_lr()[0]
                optimizer.step()  # a no-op after a step in the backward: no parameter holds a gradient
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                if release is not None:
                    release.after_step()  # the freed gradients' pages, before the forward lands around them
                step += 1

                # ---- log (every step's finish runs: it may update the work, e.g. dual ascent), checkpoint
                with accelerator.autocast():
                    record = {"step": step, **work.finish(step, sums, n), "loss": loss_value,
                              "grad_norm": float(grad_norm), "learning_rate": learning_rate}
                if step % max(cfg.logging_steps, 1) == 0 or step == total_steps or any(k.startswith("eval/")
                                                                                      for k in record):
                    metrics.write(record)
                    if dist.is_main:
                        plugins.notify("step_logged", run=run_info, record=record)
                    bar.update(task, description=f"train {objective.name} loss {loss_value:.4f}")
                stopping = dist.any(stop.requested)  # every process stops at the same step
                if stopping or (cfg.save_steps and (step % cfg.save_steps == 0 or step == total_steps)):
                    loop.step, loop.work = step, work.state()
                    last_checkpoint = checkpoint.save(output, step, accelerator, fingerprint)
                bar.update(task, completed=step)
                if stopping:
                    raise Interrupted(f"stopped at step {step} of {total_steps}; checkpoint {last_checkpoint}. "
                                      "Continue with the same command and --resume")
                if _after_step is not None:
                    _after_step(step)
        except torch.cuda.OutOfMemoryError as exc:
            what = "--batch-size" if not cfg.online else "--batch-size or --group-size or --max-new-tokens"
            raise UserError(f"out of GPU memory at step {step + 1} with --batch-size {cfg.batch_size}: lower "
                            f"{what} and raise --grad-accum to keep the effective batch, or train with --lora"
                            ) from exc

    # ---- the final model: gathered from every process (FSDP / ZeRO-3 shards), written by the main process
    accelerator.wait_for_everyone()
    state_dict = accelerator.get_state_dict(model)
    if dist.is_main:
        run_folder.save_final(output, policy, state_dict, tokenizer, resolved, model_info(cfg.model))
        print(f"saved {'the LoRA adapter' if cfg.lora else 'the model'} to {output} ({step} steps; metrics in "
              f"{metrics.path})")
        plugins.notify("train_finished", run=run_info)
    accelerator.wait_for_everyone()
    return output


# ----------------------------------------------------------------------------------------------------------
# Helpers the loop reads as single lines.


def start_in_folder(dist: Dist, output: Path, fingerprint: dict[str, Any], cfg: C.TrainConfig) -> Path | None:
    """The main process alone decides how the run starts in its folder (resume, start, or refuse); every process
    gets its answer, so all refuse with the same one line or all go on."""
    decision: tuple[str | None, str | None] = (None, None)  # (checkpoint to resume from, error)
    if dist.is_main:
        try:
            found = run_folder.start(output, fingerprint, cfg.resume, cfg.overwrite)
            decision = (str(found) if found else None, None)
        except UserError as exc:
            decision = (None, str(exc))
    path, error = dist.from_main(decision)
    if error:
        raise UserError(error)
    return Path(path) if path else None


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


def add_sums(sums: dict[str, float], values: dict[str, float]) -> None:
    for k, v in values.items():
        sums[k] = sums.get(k, 0.0) + v


def progress_bar(show: bool) -> Callable[[], Any]:
    """A context manager factory yielding a rich Progress (a silent one on processes other than the main)."""
    @contextmanager
    def bar():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      transient=False, disable=not show) as progress:
            yield progress

    return bar


def fused_adamw(dist: Dist, accelerator: Any) -> bool:
    """The fused AdamW kernel where it applies: whole (unsharded) parameters on a CPU or CUDA device. On SmolLM2 it
    takes 0.15 s a step on one CPU core against 0.53 s for the multi-tensor (foreach) one; transformers' Trainer
    (TRL's) uses it by default. FSDP2 and DeepSpeed shard or replace the optimizer: they keep the default."""
    return not dist.sharded and accelerator.device.type in ("cpu", "cuda")


def adamw(params: list[torch.nn.Parameter], cfg: Any, fused: bool) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; `fused=False` is the plain twin (tests/engine/test_optimizer.py)."""
    return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, fused=fused or None)
