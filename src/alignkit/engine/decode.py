"""`alignkit decode`: prompts -> engine.sample(decoder) -> generations JSONL, resumable, on one process or many.

    alignkit decode --model toy:instruct --prompts toy:prompts --num-samples 8 --top-p 0.9 --output gen.jsonl
    alignkit decode --conformative --conformative-base-model toy:base --conformative-weight 0.5 --output gen.jsonl
    torchrun --standalone --nproc_per_node 2 -m alignkit decode --num-samples 8 --output gen.jsonl

Work is a fixed list of (prompt, sample id) pairs cut, in that order, into batches: --batch-size rows each, or by
default as many rows as fit --batch-tokens (rows x (longest prompt + max new tokens)). Every pair draws from its
own generator seeded with (seed, prompt index, sample id), so its sample does not depend on the batch it lands
in: the same samples for a seed whatever the batch size, the number of processes or an interruption. Each
batch's lines are written and flushed together, so a restarted run with the same command skips the pairs already
in the output, drops a half-written last line, and produces the same samples an uninterrupted run would have.
Under a launcher process r takes the batches i with i mod N = r (alignkit.engine.decode_output merges them).

A batch prefills each distinct prompt once and shares its KV cache among its samples, and draws tokens by inverse
CDF; --plain-sampling is the reference path (every row prefills its own prompt, torch.multinomial draws).
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from alignkit.engine import decode_output as out_file
from alignkit.errors import Interrupted, UserError
from alignkit.outputs import check_output


def load_decoder_models(cfg: Any, made: Any) -> tuple[Any, dict[str, Any]]:
    """The tokenizer and every model the decoder steps in lockstep: role -> model, the policy first."""
    from alignkit.engine.models import load_model, load_tokenizer
    from alignkit.engine.onednn_linear import OneDnnLinear
    from alignkit.engine.sample import check_vocabularies

    tokenizer = load_tokenizer(cfg.model)
    extra = dict(getattr(made, "extra_models", {}) or {})
    check_vocabularies(tokenizer, {role: load_tokenizer(spec) for role, spec in extra.items()})
    models = {"policy": load_model(cfg.model, cfg.dtype, cfg.device)}
    for role, spec in extra.items():
        models[role] = load_model(spec, cfg.dtype, cfg.device)
    for role, model in models.items():  # --onednn: which CPU kernel runs the fp32 matmuls; the policy says any note
        note = (lambda line: print(line, file=sys.stderr)) if role == "policy" else (lambda _: None)
        OneDnnLinear.install(model, cfg.onednn, next(model.parameters()).device, note)
    return tokenizer, models


def run_exact(cfg: Any, decoder: Any, options: Any) -> dict[str, Any]:
    """decode --exact: the exact figures of the distribution the sampler would draw from, in the model's world."""
    from alignkit import plugins
    from alignkit.engine.models import load_model
    from alignkit.engine.sample import SamplingSettings

    world = plugins.world_of(cfg.model)
    if world is None:
        raise UserError(f"decode --exact needs a model of an enumerable world: '{cfg.model}' is not one (e.g. "
                        "--model toy:instruct, or a model trained from it)")
    default_prompts = type(cfg).__dataclass_fields__["prompts"].default
    if cfg.prompts != default_prompts:  # the enumeration covers the world's own prompts, never a file's
        raise UserError(f"decode --exact enumerates the {world.name} world's own prompts, so --prompts "
                        f"{cfg.prompts} would be ignored; drop --prompts (or drop --exact to sample those prompts)")
    made = decoder.make(options)
    tokenizer, models = load_decoder_models(cfg, made)
    settings = SamplingSettings(cfg.temperature, cfg.top_k, cfg.top_p, cfg.min_p)
    ref = load_model(world.reference, cfg.dtype, cfg.device) if world.reference else None
    result = world.evaluate_decoder(made, models, tokenizer, settings, ref_model=ref)
    doc = {"model": cfg.model, "decoder": decoder.name, "decoder_options": dataclasses.asdict(options),
           "sampling": {"temperature": cfg.temperature, "top_k": cfg.top_k, "top_p": cfg.top_p, "min_p": cfg.min_p},
           "ref_model": world.reference, "world": world.name, **result}
    output = Path(cfg.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(output)
    mean = result["mean"]
    print(f"exact figures of {decoder.name} on {cfg.model} written to {output}: " + ", ".join(
        f"{k}={v:.4g}" for k, v in mean.items() if isinstance(v, float)), file=sys.stderr)
    return doc


Job = tuple[int, int]  # (prompt index, sample id)


def cut_batches(jobs: list[Job], lengths: list[int], cfg: Any, world: int = 1) -> list[list[Job]]:
    """(prompt, sample) pairs -> consecutive batches: --batch-size rows, or rows while rows x (longest prompt +
    max_new_tokens) fits cfg.batch_tokens (at least one row; under a launcher, at most len(jobs) / world rows, so
    that every process gets work)."""
    if cfg.batch_size:
        return [jobs[i:i + cfg.batch_size] for i in range(0, len(jobs), cfg.batch_size)]
    cap = max(1, -(-len(jobs) // world))
    batches: list[list[Job]] = []
    batch, longest = [], 0
    for job in jobs:
        grown = max(longest, lengths[job[0]])
        if batch and (len(batch) >= cap or (len(batch) + 1) * (grown + cfg.max_new_tokens) > cfg.batch_tokens):
            batches.append(batch)
            batch, grown = [], lengths[job[0]]
        batch.append(job)
        longest = grown
    return batches + ([batch] if batch else [])


def identity(cfg: Any, decoder: Any, options: Any) -> dict[str, Any]:
    """What decides the samples of a decode run: written on every line, checked when the file is continued."""
    return {"decoder": decoder.name, "decoder_options": dataclasses.asdict(options),
            "sampling": {"temperature": cfg.temperature, "top_k": cfg.top_k, "top_p": cfg.top_p, "min_p": cfg.min_p,
                         "max_new_tokens": cfg.max_new_tokens, "seed": cfg.seed, "model": cfg.model,
                         "draw": "multinomial" if cfg.plain_sampling else "inverse-cdf", "template": cfg.template,
                         "stop": list(cfg.stop or []),
                         "prompts": cfg.prompts}}


def run(cfg: Any, decoder: Any, options: Any) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from alignkit.data.prompts import load_prompts
    from alignkit.engine.distributed import launched_world_size
    from alignkit.engine.models import load_tokenizer, pick_device
    from alignkit.engine.sample import SamplingSettings, encode_prompts, row_generator, sample_batch

    check_output(cfg.output, "file")
    pick_device(cfg.device)  # a device this machine lacks fails here, before prompts or models load
    if cfg.exact:
        run_exact(cfg, decoder, options)
        return
    tokenizer = load_tokenizer(cfg.model)
    prompts = load_prompts(cfg.prompts, tokenizer).prompts  # skipped rows are named in one warning
    if not prompts:
        raise UserError(f"no prompts in {cfg.prompts}: each row needs a 'prompt' (text or a list of messages)")
    world, rank = launched_world_size(), int(os.environ.get("RANK", "0"))
    state = _process_group(cfg) if world > 1 else None

    output = Path(cfg.output)
    target = output.with_name(f".{output.name}.new") if cfg.overwrite else output  # --overwrite: beside it
    common = identity(cfg, decoder, options)
    jobs = [(p, s) for p in range(len(prompts)) for s in range(cfg.num_samples)]  # fixed order, fixed batches
    order = {(out_file.key(prompts[p][0]), s): n for n, (p, s) in enumerate(jobs)}
    if rank == 0:
        output.parent.mkdir(parents=True, exist_ok=True)
        if cfg.overwrite:
            target.unlink(missing_ok=True)
        out_file.merge_parts(target, order)  # a crashed multi-process run left parts: they are samples too
        out_file.check_identity(output, out_file.read_complete(target, truncate=True), common)
    if state is not None:
        state.wait_for_everyone()
    done = {(out_file.key(r["prompt_id"]), int(r["sample_id"])) for r in out_file.read_complete(target, False)}
    prompt_ids = encode_prompts(tokenizer, [p for _, p in prompts], cfg.template)  # the policy's tokenizer
    batches = cut_batches(jobs, [len(ids) for ids in prompt_ids], cfg, world)
    todo = [(i, b) for i, b in enumerate(batches) if any((out_file.key(prompts[p][0]), s) not in done for p, s in b)]
    already = len(jobs) - sum(1 for _, b in todo for p, s in b if (out_file.key(prompts[p][0]), s) not in done)
    if not todo:
        if rank == 0:
            _finish(output, target, cfg.overwrite)
            print(f"nothing to do: {output} already holds all {len(jobs)} samples", file=sys.stderr)
        return
    mine = [(i, b) for i, b in todo if i % world == rank]  # the same batches, whichever process runs them

    made = decoder.make(options)
    tokenizer, models = load_decoder_models(cfg, made)
    device = next(models["policy"].parameters()).device
    # a conversation's rendered prompt, as online training's reward sees it: what `eval --reward` scores
    prompt_texts = [{} if isinstance(p, str) else {"prompt_text": tokenizer.decode(ids)}
                    for (_, p), ids in zip(prompts, prompt_ids)]
    settings = SamplingSettings(cfg.temperature, cfg.top_k, cfg.top_p, cfg.min_p)
    written, tokens, reasons = 0, 0, {"eos": 0, "stop": 0, "length": 0}
    start = time.perf_counter()
    columns = (TextColumn("decode"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    path = target if world == 1 else out_file.part_path(target, rank)
    try:
        with path.open("a", encoding="utf-8") as out, \
                Progress(*columns, disable=rank != 0 or not sys.stderr.isatty(), transient=True) as progress:
            task = progress.add_task("decode", total=len(jobs), completed=already)
            for index, batch in mine:
                result = sample_batch(models, tokenizer, [prompt_ids[p] for p, _ in batch], made, settings,
                                      max_new_tokens=cfg.max_new_tokens, stop=cfg.stop,
                                      generator=[row_generator(cfg.seed, p, s, device) for p, s in batch],
                                      share_prompts=not cfg.plain_sampling, fast_step=not cfg.plain_sampling,
                                      draw="multinomial" if cfg.plain_sampling else "inverse-cdf")
                for row, (p, s) in enumerate(batch):
                    prompt_id, prompt = prompts[p]
                    if (out_file.key(prompt_id), s) in done:  # written before an interruption: keep the first copy
                        continue
                    record = {"prompt_id": prompt_id, "prompt": prompt, **prompt_texts[p], "sample_id": s,
                              "text": result.texts[row],
                              "num_tokens": len(result.token_ids[row]), "finish_reason": result.finish_reasons[row],
                              "logprob": result.logprobs[row], **common}
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                    written += 1
                    tokens += len(result.token_ids[row])
                    reasons[result.finish_reasons[row]] += 1
                out.flush()  # a batch is on disk before the next starts
                progress.update(task, completed=already + written * world)
    except KeyboardInterrupt:
        raise Interrupted(f"{already + written} of {len(jobs)} samples are in {path} (whole batches only); run the "
                          "same command again to continue") from None
    if state is not None:
        state.wait_for_everyone()
    if rank == 0:
        total = out_file.merge_parts(target, order) if world > 1 else already + written
        _finish(output, target, cfg.overwrite)
        seconds = time.perf_counter() - start
        resumed = f", {already} already there" if already else ""
        mine_only = f" (this process; {total} in all)" if world > 1 else ""
        print(f"wrote {written} samples for {len(prompts)} prompts to {output}{resumed}{mine_only} "
              f"({reasons['eos']} eos, {reasons['stop']} stop, {reasons['length']} length; "
              f"{tokens} tokens in {seconds:.1f}s, {tokens / max(seconds, 1e-9):.0f} tokens/s)", file=sys.stderr)


def _finish(output: Path, target: Path, overwrite: bool) -> None:
    """--overwrite wrote beside the old file: the complete new one replaces it now."""
    if overwrite and target.exists():
        os.replace(target, output)


def _process_group(cfg: Any) -> Any:
    """accelerate's process state (it joins the launcher's process group): the barrier decode needs."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=cfg.device == "cpu" or not torch.cuda.is_available())
