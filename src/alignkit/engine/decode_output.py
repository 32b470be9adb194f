"""The generations file a decode run writes: what it already holds, whose run it is, and how the parts of a
multi-process run become one file.

Every line carries the run's identity (`decoder`, `decoder_options`, `sampling`: model, seed, temperature, top-k,
top-p, min-p, max new tokens, batch size, template, stop strings, prompts). A rerun of the same command continues
the file; a run with another identity is refused unless it replaces the file (`--overwrite`, written beside it and
renamed into place when complete). Under a launcher each process appends its batches to a part file of its own;
the main process merges them, in job order, at the end (and first, after a crash).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from alignkit.errors import UserError

IDENTITY_KEYS = ("decoder", "decoder_options", "sampling")


def key(prompt_id: Any) -> str:
    # 3 and "3" are the same prompt once written to JSON and read back by a resumed run
    return str(prompt_id)


def read_complete(output: Path, truncate: bool) -> list[dict[str, Any]]:
    """The complete records of a generations file, in file order. A half-written last line (a crash) is dropped,
    and cut off the file when `truncate`; an unreadable line before the end is an error that names it."""
    if not output.exists():
        return []
    raw = output.read_bytes()
    lines = raw.split(b"\n")
    records, keep = [], 0
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        if not line.strip():
            keep += len(line) + (0 if last else 1)
            continue
        try:
            record = json.loads(line)
            complete = not last and isinstance(record, dict)  # a line without its newline was cut mid-write
        except ValueError:
            complete = False
        if not complete:
            if not last and any(x.strip() for x in lines[i + 1:]):
                raise UserError(f"{output} line {i + 1} is not a complete JSON record; fix or remove it, then rerun")
            break
        records.append(record)
        keep += len(line) + 1
    if truncate and keep < len(raw):
        with output.open("r+b") as f:  # drop the torn last line; the batch it belonged to is redone
            f.truncate(keep)
    return records


def check_identity(output: Path, records: list[dict[str, Any]], identity: dict[str, Any]) -> None:
    """Refuse to continue a file another run wrote, naming what differs."""
    if not records:
        return
    stored = {k: records[0].get(k) for k in IDENTITY_KEYS}
    if stored == identity:
        return
    diffs = []
    for k in IDENTITY_KEYS:
        a, b = stored.get(k) or {}, identity[k]
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += [f"{k}.{f}: {a.get(f)!r} there, {b.get(f)!r} here" for f in sorted(set(a) | set(b))
                      if a.get(f) != b.get(f)]
        elif a != b:
            diffs.append(f"{k}: {a!r} there, {b!r} here")
    raise UserError(f"{output} holds samples of another decode run ({'; '.join(diffs)}); replace it with "
                    "--overwrite, or choose another --output")


def part_path(output: Path, rank: int) -> Path:
    return output.with_name(f".{output.name}.part{rank}")


def merge_parts(output: Path, order: dict[tuple[str, int], int]) -> int:
    """Fold every process's part file into `output` (complete records only, each (prompt, sample) once, sorted by
    job order), written beside it and renamed into place; returns how many records the file holds."""
    parts = sorted(output.parent.glob(f".{output.name}.part*"))
    if not parts:
        return len(read_complete(output, truncate=False))
    records: dict[tuple[str, int], dict] = {}
    for source in [output, *parts]:
        for record in read_complete(source, truncate=False):
            records.setdefault((key(record["prompt_id"]), int(record["sample_id"])), record)
    ranked = sorted(records.items(), key=lambda kv: order.get(kv[0], len(order)))
    tmp = output.with_name(f".{output.name}.merge")
    with tmp.open("w", encoding="utf-8") as f:
        for _, record in ranked:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, output)
    for part in parts:
        part.unlink()
    return len(ranked)
