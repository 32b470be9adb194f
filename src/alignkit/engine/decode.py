"""`alignkit decode`: prompts -> engine.sample(decoder) -> generations JSONL, resumable.

    alignkit decode --model toy:instruct --prompts toy:prompts --num-samples 8 --top-p 0.9 --output gen.jsonl
    alignkit decode --conformative --conformative-base-model toy:base --conformative-weight 0.5 --output gen.jsonl

Work is a fixed list of (prompt, sample id) pairs cut into fixed batches; batch i always draws from a generator
seeded with (seed, i). Each batch's lines are written and flushed together, so a restarted run with the same
command skips the (prompt_id, sample_id) pairs already in the output, drops a half-written last line, and
produces the same samples an uninterrupted run would have.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from alignkit.errors import UserError


# ----------------------------------------------------------------------------------------------------------
# Prompts in


def _rows(path: Path) -> list[tuple[int, Any]]:
    """(line number or row number, raw row) pairs from a .jsonl/.json/.csv/.parquet file or a saved data set."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = []
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        rows.append((number, json.loads(line)))
                    except json.JSONDecodeError as exc:
                        raise UserError(f"{path}:{number} is not valid JSON ({exc.msg})") from None
        return rows
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise UserError(f"{path} should hold a list of objects with a 'prompt' field")
        return list(enumerate(data, start=1))
    if suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as f:
            return [(n, row) for n, row in enumerate(csv.DictReader(f), start=2)]  # line 1 is the header
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(enumerate(pq.read_table(path).to_pylist(), start=1))
    if path.is_dir():
        from datasets import load_from_disk

        return list(enumerate(load_from_disk(str(path)), start=1))
    raise UserError(f"cannot read prompts from '{path}': use a .jsonl, .json, .csv or .parquet file")


def read_prompts(spec: str) -> tuple[list[tuple[Any, Any]], list[int]]:
    """[(prompt_id, prompt)] and the row numbers skipped for having no usable 'prompt'."""
    from alignkit.plugins import resolve_resource

    spec = resolve_resource(spec, "data")
    path = Path(spec)
    if not path.exists():
        raise UserError(f"prompts file '{spec}' does not exist")
    prompts, skipped, seen = [], [], set()
    for index, (number, row) in enumerate(_rows(path)):
        prompt = row.get("prompt") if isinstance(row, dict) else None
        if not (isinstance(prompt, str) and prompt) and not (isinstance(prompt, list) and prompt):
            skipped.append(number)
            continue
        prompt_id = row.get("id")
        prompt_id = index if prompt_id is None else prompt_id  # default: the row's 0-based index in the file
        if _key(prompt_id) in seen:
            raise UserError(f"{spec}: prompt id {prompt_id!r} (row {number}) appears twice; ids must be unique")
        seen.add(_key(prompt_id))
        prompts.append((prompt_id, prompt))
    return prompts, skipped


def _key(prompt_id: Any) -> str:
    # 3 and "3" are the same prompt once written to JSON and read back by a resumed run
    return str(prompt_id)


# ----------------------------------------------------------------------------------------------------------
# Output: resume support


def finished_samples(output: Path) -> set[tuple[str, int]]:
    """(prompt_id, sample_id) pairs already written; a half-written last line is cut off the file."""
    if not output.exists():
        return set()
    raw = output.read_bytes()
    lines = raw.split(b"\n")
    done, keep = set(), 0
    for i, line in enumerate(lines):
        if not line.strip():
            keep += len(line) + (1 if i < len(lines) - 1 else 0)
            continue
        try:
            record = json.loads(line)
            complete = i < len(lines) - 1  # a line without its newline was interrupted mid-write
        except json.JSONDecodeError:
            complete = False
        if not complete:
            if i < len(lines) - 1 and any(x.strip() for x in lines[i + 1:]):
                raise UserError(f"{output} line {i + 1} is not valid JSON; fix or remove it, then rerun")
            break
        done.add((_key(record["prompt_id"]), int(record["sample_id"])))
        keep += len(line) + 1
    if keep < len(raw):
        with output.open("r+b") as f:  # drop the torn last line; the batch it belonged to is redone
            f.truncate(keep)
    return done


# ----------------------------------------------------------------------------------------------------------
# The command


def load_decoder_models(cfg: Any, made: Any) -> tuple[Any, dict[str, Any]]:
    """The tokenizer and every model the decoder steps in lockstep: role -> model, the policy first."""
    from alignkit.engine.models import load_model, load_tokenizer
    from alignkit.engine.sample import check_vocabularies

    tokenizer = load_tokenizer(cfg.model)
    extra = dict(getattr(made, "extra_models", {}) or {})
    check_vocabularies(tokenizer, {role: load_tokenizer(spec) for role, spec in extra.items()})
    models = {"policy": load_model(cfg.model, cfg.dtype, cfg.device)}
    for role, spec in extra.items():
        models[role] = load_model(spec, cfg.dtype, cfg.device)
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


def run(cfg: Any, decoder: Any, options: Any) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from alignkit.engine.sample import SamplingSettings, encode_prompts, make_generator, sample_batch

    if cfg.exact:
        run_exact(cfg, decoder, options)
        return
    if cfg.num_samples < 1 or cfg.batch_size < 1 or cfg.max_new_tokens < 1:
        raise UserError("--num-samples, --batch-size and --max-new-tokens must be at least 1")
    prompts, skipped = read_prompts(cfg.prompts)
    if skipped:
        shown = ", ".join(map(str, skipped[:10])) + (" ..." if len(skipped) > 10 else "")
        print(f"warning: skipped {len(skipped)} row(s) of {cfg.prompts} without a 'prompt' field (rows {shown})",
              file=sys.stderr)
    if not prompts:
        raise UserError(f"no prompts in {cfg.prompts}: each row needs a 'prompt' (text or a list of messages)")

    output = Path(cfg.output)
    done = finished_samples(output)
    jobs = [(p, s) for p in range(len(prompts)) for s in range(cfg.num_samples)]  # fixed order, fixed batches
    batches = [jobs[i:i + cfg.batch_size] for i in range(0, len(jobs), cfg.batch_size)]
    todo = [(i, b) for i, b in enumerate(batches)
            if any((_key(prompts[p][0]), s) not in done for p, s in b)]
    already = len(jobs) - sum(1 for _, b in todo for p, s in b if (_key(prompts[p][0]), s) not in done)
    if not todo:
        print(f"nothing to do: {output} already holds all {len(jobs)} samples", file=sys.stderr)
        return

    made = decoder.make(options)
    tokenizer, models = load_decoder_models(cfg, made)
    device = next(models["policy"].parameters()).device
    prompt_ids = encode_prompts(tokenizer, [p for _, p in prompts], cfg.template)
    settings = SamplingSettings(cfg.temperature, cfg.top_k, cfg.top_p, cfg.min_p)
    common = {"decoder": decoder.name, "decoder_options": dataclasses.asdict(options),
              "sampling": {"temperature": cfg.temperature, "top_k": cfg.top_k, "top_p": cfg.top_p,
                           "min_p": cfg.min_p, "max_new_tokens": cfg.max_new_tokens, "seed": cfg.seed,
                           "model": cfg.model}}

    output.parent.mkdir(parents=True, exist_ok=True)
    written, tokens, reasons = 0, 0, {"eos": 0, "stop": 0, "length": 0}
    start = time.perf_counter()
    columns = (TextColumn("decode"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with output.open("a", encoding="utf-8") as out, \
            Progress(*columns, disable=not sys.stderr.isatty(), transient=True) as progress:
        task = progress.add_task("decode", total=len(jobs), completed=already)
        for index, batch in todo:
            result = sample_batch(models, tokenizer, [prompt_ids[p] for p, _ in batch], made, settings,
                                  max_new_tokens=cfg.max_new_tokens, stop=cfg.stop,
                                  generator=make_generator(cfg.seed, index, device))
            for row, (p, s) in enumerate(batch):
                prompt_id, prompt = prompts[p]
                if (_key(prompt_id), s) in done:  # written before an interruption: keep the first copy
                    continue
                record = {"prompt_id": prompt_id, "prompt": prompt, "sample_id": s, "text": result.texts[row],
                          "num_tokens": len(result.token_ids[row]), "finish_reason": result.finish_reasons[row],
                          "logprob": result.logprobs[row], **common}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                written += 1
                tokens += len(result.token_ids[row])
                reasons[result.finish_reasons[row]] += 1
            out.flush()  # a batch is on disk before the next starts
            progress.update(task, completed=already + written)

    seconds = time.perf_counter() - start
    resumed = f", {already} already there" if already else ""
    print(f"wrote {written} samples for {len(prompts)} prompts to {output}{resumed} "
          f"({reasons['eos']} eos, {reasons['stop']} stop, {reasons['length']} length; "
          f"{tokens} tokens in {seconds:.1f}s, {tokens / max(seconds, 1e-9):.0f} tokens/s)", file=sys.stderr)
