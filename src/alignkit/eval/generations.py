"""Reading generation files: decode's JSONL or plain {prompt, text} JSONL, grouped by prompt.

A line is one JSON object with a string `text` and a `prompt_id` or a string `prompt`. Samples are grouped by
`prompt_id` when a line has one, else by the prompt text. Lines are read by the data layer's JSON-lines reader,
so the same rules hold as for `prepare` (a BOM is dropped; invalid UTF-8 or a lone surrogate spoils only its own
line). Malformed lines are kept as (line number, reason) and skipped, so the report can say how many lines were
evaluated.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from alignkit.data.sources import MALFORMED_JSON, WRONG_TYPE, RawRow, read_json_lines
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
    prompt = row.get("prompt")
    if prompt is not None and not isinstance(prompt, str) and not is_messages(prompt):
        return "'prompt' is neither a string nor a list of {role, content} messages"
    return None


def is_messages(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in value)


def prompt_text(row: dict) -> str | None:
    """The text a reward sees: the prompt string; for a conversation, the rendered prompt decode recorded
    (`prompt_text`, what online training scores too), else its messages as 'role: content' lines."""
    prompt = row.get("prompt")
    if isinstance(prompt, str) or prompt is None:
        return prompt
    if isinstance(row.get("prompt_text"), str):
        return row["prompt_text"]
    return "".join(f"{m.get('role', 'user')}: {m['content']}\n" for m in prompt) + "assistant: "


def read_generations(path: str | Path) -> GenerationFile:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"generations file '{path}' does not exist (alignkit decode writes one)")
    groups: dict[str, PromptGroup] = {}
    malformed: list[tuple[int, str]] = []
    lines = 0
    for raw in read_json_lines(p):
        lines += 1
        reason = _unreadable(raw) or _check(raw.row)
        if reason:  # _check(None) is a reason too: rows the reader could not parse never get past here
            malformed.append((raw.line or 0, reason))  # (a JSON-lines row always has its line)
            continue
        row: dict = raw.row  # type: ignore[assignment]
        key = str(row["prompt_id"]) if row.get("prompt_id") is not None else row["prompt"]
        group = groups.setdefault(key, PromptGroup(key=key, prompt=prompt_text(row)))
        if group.prompt is None:
            group.prompt = prompt_text(row)
        tokens = row.get("num_tokens")
        group.texts.append(row["text"])
        group.num_tokens.append(tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None)
    return GenerationFile(path=str(p), groups=list(groups.values()), lines=lines, malformed=malformed)


def _unreadable(raw: RawRow) -> str | None:
    """The reader's reject in this file's words ("invalid JSON (...)", "not a JSON object"), or None."""
    if raw.error is None:
        return None
    if raw.error == WRONG_TYPE:
        return "not a JSON object"
    name = "invalid JSON" if raw.error == MALFORMED_JSON else raw.error
    return f"{name} ({raw.detail})" if raw.detail else name
