"""Prompts for `decode --prompts` and online training's `--prompts`: `load_prompts(spec, tokenizer=None)`.

    prompts, skipped = load_prompts("prompts.jsonl")      # [(prompt_id, prompt)], [(line or row, reason)]

A spec is one of
  - a raw file, save_to_disk folder or Hub id, read by `alignkit.data.sources` (the reader `prepare` uses, so a
    BOM, invalid UTF-8 or a malformed line mean the same here as there);
  - a prepared prompt set: a folder with manifest.json of kind "prompt" (`alignkit prepare RAW --format prompt`);
    given a tokenizer, the manifest's tokenizer hash must match it (the check `load_prepared` makes);
  - a resource name such as `toy:prompts`, resolved by `sources.resolve_spec`.

A prompt is a non-blank string or a list of {role, content} messages with string fields, as written. Its id is
the row's `id` field, else the row's 0-based index in the source (unreadable rows count, so an id never shifts
when an earlier line is mended). A row that cannot be read or has no usable prompt is skipped and named in ONE
warning on stderr; it never stops the run (docs/decode.md). Two rows with the same id are an error.
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

from alignkit.data.sources import FILE_SUFFIXES, RawRow, open_source, resolve_spec
from alignkit.data.tokenize import Prompt  # str, or a list of {role, content} messages
from alignkit.errors import UserError

SHOWN = 10  # line numbers listed in the warning


class PromptSet(NamedTuple):
    """What `load_prompts` returns; unpacks as `prompts, skipped = load_prompts(spec)`."""

    prompts: list[tuple[Any, Prompt]]   # (prompt_id, prompt) in source order
    skipped: list[tuple[int, str]]      # (line number in a text file, else 1-based row number; reason)


def load_prompts(spec: str, tokenizer: Any = None) -> PromptSet:
    path = Path(resolve_spec(spec))
    if (path / "manifest.json").is_file():
        return PromptSet(_prepared(spec, path, tokenizer), [])
    if path.suffix.lower() in FILE_SUFFIXES and not path.exists():
        raise UserError(f"prompts file '{spec}' does not exist; give a .jsonl, .json, .csv or .parquet file, a "
                        "prepared prompt folder or toy:prompts")
    prompts: list[tuple[Any, Prompt]] = []
    skipped: list[tuple[int, str]] = []
    seen: dict[str, str] = {}  # str(id) -> where it was first seen: 3 and "3" are one id once written as JSON
    numbered_by_line = False
    for raw in open_source(spec).rows:
        numbered_by_line = numbered_by_line or raw.line is not None
        where = raw.line if raw.line is not None else raw.index + 1
        prompt, reason = _prompt(raw)
        if reason:
            skipped.append((where, reason))
            continue
        prompt_id = raw.row.get("id") if raw.row else None
        prompt_id = raw.index if prompt_id is None or prompt_id == "" else prompt_id  # "" is a CSV's empty cell
        label = f"{'line' if raw.line is not None else 'row'} {where}"
        if str(prompt_id) in seen:
            raise UserError(f"{spec}: prompt id {prompt_id!r} ({label}) appears twice (first at "
                            f"{seen[str(prompt_id)]}); ids must be unique")
        seen[str(prompt_id)] = label
        prompts.append((prompt_id, prompt))
    if skipped:
        _warn(spec, skipped, len(prompts) + len(skipped), "lines" if numbered_by_line else "rows")
    return PromptSet(prompts, skipped)


def _prompt(raw: RawRow) -> tuple[Prompt | None, str | None]:
    """(the row's prompt, None), or (None, why it is skipped) in prepare's reject words."""
    if raw.row is None:
        return None, raw.error or "unreadable"
    prompt = raw.row.get("prompt")
    if prompt is None:
        return None, "missing field"
    if isinstance(prompt, str):
        return (prompt, None) if prompt.strip() else (None, "empty prompt")
    if not (isinstance(prompt, list) and prompt and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in prompt)):
        return None, "wrong type"  # a number, a dict, messages without string role/content: no template takes it
    if not any(m["content"].strip() for m in prompt):
        return None, "empty prompt"
    return prompt, None


def _warn(spec: str, skipped: list[tuple[int, str]], read: int, unit: str) -> None:
    numbers = ", ".join(str(n) for n, _ in skipped[:SHOWN]) + (", ..." if len(skipped) > SHOWN else "")
    reasons = ", ".join(f"{n} {reason}" for reason, n in Counter(r for _, r in skipped).most_common())
    print(f"warning: skipped {len(skipped)} of {read} rows of {spec} without a usable 'prompt' "
          f"({unit} {numbers}): {reasons}", file=sys.stderr)


def _prepared(spec: str, folder: Path, tokenizer: Any) -> list[tuple[Any, Prompt]]:
    """The prompts of a prepared prompt set, ids = the source rows' indices (as reading the raw file gives)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise UserError(f"{folder / 'manifest.json'} cannot be read ({exc}); run alignkit prepare again") from exc
    if manifest.get("kind") != "prompt":
        raise UserError(f"{spec} holds {manifest.get('kind')} data, but prompts are needed here; prepare them "
                        "with alignkit prepare RAW --format prompt")
    if tokenizer is not None:
        from alignkit.data.load import load_prepared

        dataset = load_prepared(str(folder), tokenizer, "prompt")  # refuses a different tokenizer
    else:
        import datasets

        dataset = datasets.load_from_disk(str(folder))
    # The `prompt` column is the rendered text; `messages` (when present) keeps a conversation as it was written.
    messages = dataset["messages"] if "messages" in dataset.column_names else [None] * len(dataset)
    return [(index, json.loads(m) if m else text)
            for text, m, index in zip(dataset["prompt"], messages, dataset["source_index"])]
