"""Train on the toy world through `alignkit train` (the user's entry point) and evaluate the result exactly.

    from toy_training import train_and_evaluate
    run = train_and_evaluate(tmp_path / "hdpo", "hdpo", {"alpha": 0.8}, max_steps=250)
    run["expected_reward"], run["entropy"], run["kl"], run["expected_length"], run["outside_mass"], run["path"]
    run["in_grammar"]["expected_reward"], run["in_grammar"]["entropy"], run["in_grammar"]["expected_length"]

Every 880 responses of every toy prompt are enumerated (alignkit.toy.exact), so the figures are exact, not
Monte-Carlo estimates; `kl` is KL(trained ‖ starting model), the reference the objective pulls toward.

Why "in_grammar": offline preference training on toy:prefs moves probability onto text outside the grammar
("sure", "grass indeed", "<system>"), which no pair ever shows, so nothing pushes it back. The plain means mix
two effects: what the policy does among real answers, and how much mass it lost. `in_grammar` is the policy
conditioned on producing a real answer, π(y | x, y ∈ Y) = π(y|x) / π(Y|x), per prompt and then averaged:

    E[r | Y] = expected_reward / π(Y)      E[|y| | Y] = expected_length / π(Y)
    H(π(·|Y)) = −Σ_Y (π/π(Y)) log(π/π(Y)) = entropy / π(Y) + log π(Y)          (π(Y) = 1 − outside_mass)

Read it together with outside_mass, which says how much was lost.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

torch.set_num_threads(1)  # CI has 2 cores and other jobs share them

# CPU and fp32 whatever the machine has: the same command gives the same weights, so figures are reproducible.
PINNED = {"device": "cpu", "dtype": "fp32"}


def cli_args(options: dict[str, Any]) -> list[str]:
    """{"max_steps": 250, "lora": True, "alpha": 0.8} -> ["--max-steps", "250", "--lora", "--alpha", "0.8"]."""
    args: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):  # Typer's --x / --no-x switches take no value
            args.append(flag if value else "--no-" + key.replace("_", "-"))
        else:
            args += [flag, str(value)]
    return args


def _load(name_or_path: str) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode. The packaged toy models never change, so they are loaded once; a run
    folder may be retrained in place, so it is read afresh."""
    return _load_toy(name_or_path) if name_or_path.startswith("toy:") else _load_path(name_or_path)


@lru_cache(maxsize=None)
def _load_toy(name: str) -> tuple[Any, Any]:
    from alignkit import toy

    return _load_path(toy.resolve(name))


def _load_path(path: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def in_grammar(row: dict[str, Any]) -> dict[str, float]:
    """One prompt's exact figures (a per_prompt row of exact_evaluate) for the policy conditioned on Y."""
    kept = 1.0 - row["outside_mass"]  # π(Y|x)
    return {"expected_reward": row["expected_reward"] / kept,
            "entropy": row["entropy"] / kept + math.log(kept),
            "expected_length": row["expected_length"] / kept}


def evaluate(model: str, ref_model: str | None = None) -> dict[str, Any]:
    """Exact-evaluation means of a model folder or toy name: expected_reward, entropy, kl (None without a
    reference), expected_length (words), outside_mass, and "in_grammar" (see the module docstring)."""
    from alignkit.toy.exact import exact_evaluate

    policy, tokenizer = _load(model)
    ref = _load(ref_model)[0] if ref_model else None
    with torch.no_grad():
        result = exact_evaluate(policy, tokenizer, ref_model=ref)
    rows = [in_grammar(row) for row in result["per_prompt"]]  # 8 prompts
    conditioned = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
    return {**result["mean"], "in_grammar": conditioned}


def train(output_dir: str | Path, objective: str, options: dict[str, Any] | None = None,
          transforms: tuple[str, ...] = (), **train_overrides: Any) -> Path:
    """Run `alignkit train <objective> [--<option> v ...] [--<transform> ...] --output <output_dir>` in-process.

    `options` are the objective's and transforms' options (e.g. {"alpha": 0.8}); `train_overrides` are
    TrainConfig fields (e.g. max_steps=250, learning_rate=1e-3). Raises with the CLI's output if it fails.
    """
    from typer.testing import CliRunner

    from alignkit.cli import build_app

    args = ["train", objective, *cli_args(options or {}), *[f"--{t}" for t in transforms],
            *cli_args({**PINNED, **train_overrides}), "--output", str(output_dir)]
    result = CliRunner().invoke(build_app(), args)
    if result.exit_code != 0:
        raise AssertionError(f"alignkit {' '.join(args)} exited {result.exit_code}:\n{result.output}"
                             ) from result.exception
    return Path(output_dir)


def train_and_evaluate(output_dir: str | Path, objective: str, options: dict[str, Any] | None = None,
                       transforms: tuple[str, ...] = (), **train_overrides: Any) -> dict[str, Any]:
    """Train (see `train`) and return the trained model's exact-evaluation means plus "path" (the run folder).

    The reference for `kl` is the starting model (train_overrides' model, toy:instruct by default), i.e. the
    KL the objective trades reward against.
    """
    path = train(output_dir, objective, options, transforms, **train_overrides)
    start = train_overrides.get("ref_model") or train_overrides.get("model", "toy:instruct")
    return {**evaluate(str(path), ref_model=str(start)), "path": path}
