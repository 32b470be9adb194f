"""Reading generation files: decode's JSONL or plain {prompt, text} JSONL, grouped by prompt.

A line is one JSON object with a string `text` and a `prompt_id` or a string `prompt`. Samples are grouped by
`prompt_id` when a line has one, else by the prompt text. Malformed lines are kept as (line number, reason) and
skipped, so the report can say how many lines were evaluated.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from alignkit.errors import UserError


@dataclass
class PromptGroup:
    """One prompt and its samples, in file order."""

    key: str                      # prompt_id (as a string) or the prompt text
    prompt: str | None            # None when the file gives only prompt ids
    texts: list[str] = field(default_factory=list)
    num_tokens: list[int | None] = field(default_factory=list)


@dataclass
class GenerationFile:
    path: str
    groups: list[PromptGroup]
    lines: int                    # non-blank lines read
    malformed: list[tuple[int, str]]  # (1-based line number, reason)

    @property
    def samples(self) -> int:
        return sum(len(g.texts) for g in self.groups)


def _check(row: object) -> str | None:
    """Why a parsed line cannot be used, or None."""
    if not isinstance(row, dict):
        return "not a JSON object"
    if not isinstance(row.get("text"), str):
        return "no string 'text'"
    if row.get("prompt_id") is None and not isinstance(row.get("prompt"), str):
        return "neither 'prompt_id' nor a string 'prompt'"
    if "prompt" in row and row["prompt"] is not None and not isinstance(row["prompt"], str):
        return "'prompt' is not a string"
    return None


def read_generations(path: str | Path) -> GenerationFile:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"generations file '{path}' does not exist (alignkit decode writes one)")
    groups: dict[str, PromptGroup] = {}
    malformed: list[tuple[int, str]] = []
    lines = 0
    with p.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            lines += 1
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                malformed.append((number, f"invalid JSON ({exc.msg})"))
                continue
            reason = _check(row)
            if reason:
                malformed.append((number, reason))
                continue
            key = str(row["prompt_id"]) if row.get("prompt_id") is not None else row["prompt"]
            group = groups.setdefault(key, PromptGroup(key=key, prompt=row.get("prompt")))
            if group.prompt is None:
                group.prompt = row.get("prompt")
            tokens = row.get("num_tokens")
            group.texts.append(row["text"])
            group.num_tokens.append(tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None)
    return GenerationFile(path=str(p), groups=list(groups.values()), lines=lines, malformed=malformed)
