"""`alignkit eval`: read generation files, compute every metric per prompt, aggregate, write the report.

    alignkit eval dpo.jsonl qempo.jsonl --reward toy --output eval/

Steps: (optionally decode --model first) -> read each file, grouping samples by prompt -> score rewards and
embeddings once per file -> each metric per prompt -> mean over prompts with a bootstrap CI -> report.json,
report.md, plots/*.png and a table on the terminal. (--exact adds the toy world's exact numbers for --model.)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from alignkit import plugins
from alignkit.config import DecodeConfig, EvalConfig
from alignkit.errors import UserError
from alignkit.eval import PromptSamples
from alignkit.eval.generations import GenerationFile, read_generations
from alignkit.eval.stats import bootstrap_mean
from alignkit.registry import Metric

NEED_FLAGS = {"reward": "--reward", "embedder": "--embedder"}


def select_metrics(cfg: EvalConfig) -> tuple[list[Metric], dict[str, str]]:
    """The metrics to compute, and {name: why it was skipped} for defaults whose inputs are missing."""
    registry = plugins.registry()
    given = {"reward": cfg.reward is not None, "embedder": cfg.embedder is not None}
    if cfg.metrics:
        chosen = [registry.get("metric", n.strip()) for n in cfg.metrics.split(",") if n.strip()]
        for m in chosen:
            missing = [NEED_FLAGS.get(n, n) for n in m.needs if not given.get(n, False)]
            if missing:
                raise UserError(f"metric '{m.name}' needs {' and '.join(missing)}")
        return chosen, {}
    chosen, skipped = [], {}
    for m in sorted(registry.all("metric"), key=lambda m: (m.kind != "quality", m.name)):  # quality rows first
        missing = [NEED_FLAGS.get(n, n) for n in m.needs if not given.get(n, False)]
        if missing:
            skipped[m.name] = f"needs {' and '.join(missing)}"
        else:
            chosen.append(m)
    return chosen, skipped


def _decode_first(cfg: EvalConfig) -> list[str]:
    """Sample --num-samples completions per toy/default prompt from --model into <output>/generations.jsonl."""
    from alignkit.engine import decode

    out = Path(cfg.output) / "generations.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    decoder = plugins.registry().get("decoder", "sample")
    decode.run(DecodeConfig(model=cfg.model, output=str(out), num_samples=cfg.num_samples, seed=cfg.seed),
               decoder, decoder.options())
    return [str(out)]


def _labels(paths: list[str]) -> list[str]:
    """Short unique names for the files: the stem, or parent/stem where stems collide."""
    stems = [Path(p).stem for p in paths]
    return [s if stems.count(s) == 1 else f"{Path(p).parent.name}/{s}" for s, p in zip(stems, paths)]


def evaluate_file(gen: GenerationFile, metrics: list[Metric], reward_fn: Any, embed_fn: Any,
                  cfg: EvalConfig) -> dict[str, Any]:
    """Per-prompt values of every metric for one file, and their bootstrap summaries."""
    groups = gen.groups
    prompts = [g.prompt for g in groups for _ in g.texts]
    texts = [t for g in groups for t in g.texts]
    rewards = embeddings = None
    if reward_fn is not None and texts:
        if any(p is None for p in prompts):
            raise UserError(f"--reward needs the prompt text, but {gen.path} has lines with only a prompt_id")
        rewards = reward_fn(prompts, texts)
    if embed_fn is not None and texts:
        embeddings = embed_fn(texts)  # (N, d)
    per_prompt, start = [], 0
    for g in groups:
        end = start + len(g.texts)
        samples = PromptSamples(prompt=g.prompt, texts=g.texts, num_tokens=g.num_tokens,
                                rewards=None if rewards is None else rewards[start:end],
                                embeddings=None if embeddings is None else embeddings[start:end],
                                pass_threshold=cfg.pass_threshold)
        values = {}
        for m in metrics:
            v = m.compute(samples)
            values[m.name] = None if v is None else float(v)
        per_prompt.append({"prompt_id": g.key, "prompt": g.prompt, "samples": len(g.texts), "metrics": values})
        start = end
    summary = {}
    for m in metrics:
        vals = [p["metrics"][m.name] for p in per_prompt if p["metrics"][m.name] is not None]
        summary[m.name] = bootstrap_mean(vals, cfg.bootstrap, cfg.seed).as_dict() if vals else None
    return {"per_prompt": per_prompt, "metrics": summary}


def _exact(cfg: EvalConfig) -> dict[str, Any]:
    """The exact figures of --model in the world its folder names (alignkit.registry.World)."""
    from alignkit.engine.models import load_model, load_tokenizer

    world = exact_world(cfg.model)
    ref_spec = cfg.ref_model or world.reference
    model, tokenizer = load_model(cfg.model), load_tokenizer(cfg.model)
    ref = load_model(ref_spec) if ref_spec else None
    result = world.evaluate(model, tokenizer, ref_model=ref)
    return {"model": cfg.model, "ref_model": ref_spec, "world": world.name, **result}


def exact_world(model: str) -> Any:
    """The enumerable world --exact evaluates `model` in, or a one-line error that says which models have one."""
    world = plugins.world_of(model)
    if world is None:
        worlds = ", ".join(plugins.registry().names("world")) or "none is installed"
        raise UserError(f"--exact needs a model of an enumerable world ({worlds}): '{model}' is not one (its folder "
                        "has no alignkit-model.json naming a world); e.g. --model toy:instruct, or a model trained "
                        "from it")
    return world


def run(cfg: EvalConfig) -> dict[str, Any]:
    from alignkit.eval import report

    if cfg.exact and not cfg.model:
        raise UserError("--exact evaluates a model: give --model (a toy model folder or toy:instruct)")
    if cfg.bootstrap < 0:
        raise UserError("--bootstrap must be 0 or more")
    paths = list(cfg.generations or [])
    if not paths and not cfg.model:
        raise UserError("give generation files (alignkit eval gens.jsonl) or --model to decode first")
    if not paths and not cfg.exact:
        paths = _decode_first(cfg)

    # No generations (--exact alone): no sample metric runs, so none is listed or reported as skipped
    metrics, skipped = select_metrics(cfg) if paths else ([], {})
    reward_fn = embed_fn = None
    if cfg.reward is not None:
        from alignkit.plugins import load_reward

        reward_fn = load_reward(cfg.reward)
    if cfg.embedder is not None and any("embedder" in m.needs for m in metrics):
        from alignkit.eval.embed import load_embedder

        embed_fn = load_embedder(cfg.embedder)

    notes = [f"{name} skipped: {why}" for name, why in skipped.items()]
    files = []
    for path, label in zip(paths, _labels(paths)):
        gen = read_generations(path)
        result = evaluate_file(gen, metrics, reward_fn, embed_fn, cfg)
        counts = {"lines": gen.lines, "malformed": len(gen.malformed), "evaluated": gen.lines - len(gen.malformed),
                  "prompts": len(gen.groups), "samples": gen.samples}
        if gen.malformed:
            notes.append(f"{label}: skipped {len(gen.malformed)} malformed line(s) of {gen.lines}: " + ", ".join(
                f"line {n} ({why})" for n, why in gen.malformed[:10]) + (" ..." if len(gen.malformed) > 10 else ""))
        files.append({"path": path, "label": label, "counts": counts,
                      "malformed": [{"line": n, "reason": why} for n, why in gen.malformed], **result})

    doc: dict[str, Any] = {
        "settings": {"reward": cfg.reward, "embedder": cfg.embedder, "pass_threshold": cfg.pass_threshold,
                     "bootstrap": cfg.bootstrap, "seed": cfg.seed, "ci_level": 0.95},
        "metrics": {m.name: {"kind": m.kind, "higher_is_better": m.higher_is_better, "help": m.help}
                    for m in metrics},
        "skipped": skipped,
        "files": files,
        "notes": notes,
    }
    if cfg.exact:
        doc["exact"] = _exact(cfg)
    report.write(doc, Path(cfg.output))
    return doc
