"""The embedded toy world (see docs/toy-world.md): a tiny tokenizer and Llama model (base and instruct),
preference pairs, prompts, a programmatic reward and exact evaluation over an enumerable response space.

`resolve("toy:base")` gives the packaged path behind a `toy:*` name. No torch here.
"""
from __future__ import annotations

from pathlib import Path

from alignkit.errors import UserError, did_you_mean

ARTIFACTS = Path(__file__).parent / "artifacts"
NAMES = {
    "toy:base": "base",
    "toy:instruct": "instruct",
    "toy:prefs": "prefs.jsonl",
    "toy:prefs-onpolicy": "prefs-onpolicy.jsonl",
    "toy:prompts": "prompts.jsonl",
}


def resolve(spec: str) -> Path:
    """The packaged folder or file behind a toy name: toy:base, toy:instruct (model folders), toy:prefs,
    toy:prefs-onpolicy, toy:prompts (.jsonl files)."""
    if spec not in NAMES:
        raise UserError(f"unknown toy name '{spec}'{did_you_mean(spec, NAMES)} ({', '.join(NAMES)})")
    path = ARTIFACTS / NAMES[spec]
    if not path.exists():
        raise UserError(f"the toy world is not built ({path} is missing); run: python -m alignkit.toy.build")
    return path
