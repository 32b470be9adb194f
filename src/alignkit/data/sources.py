"""Reading raw rows from a file, a save_to_disk folder, a Hub id or `toy:prefs` / `toy:prompts`.

`read_rows(spec, split, limit)` yields `RawRow`s in source order. A row that cannot be read (a malformed JSON
line, a line that is not an object) is still yielded, with `error` set, so that rows read = kept + rejected.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignkit.errors import UserError

FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


@dataclass
class RawRow:
    index: int                      # 0-based position in the source: `source_index` in the output and rejects
    row: dict | None                # the parsed row, or None when it could not be read
    error: str | None = None        # reject reason when row is None
    detail: str | None = None       # e.g. the JSON decoder's message
    line: int | None = None         # 1-based line number for .jsonl files


@dataclass
class Source:
    """An opened source: a description for the manifest and its rows."""

    description: str
    rows: Iterator[RawRow]


def resolve_spec(spec: str) -> str:
    """The file or folder behind a data spec: a registered resource (toy:prefs) or the spec as is."""
    from alignkit.plugins import resolve_resource

    return resolve_resource(spec, "data")


def open_source(spec: str, split: str = "train", limit: int | None = None) -> Source:
    path = Path(resolve_spec(spec))
    if path.is_dir():
        rows = _read_saved(path, split)
    elif path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            rows = _read_jsonl(path)
        elif suffix == ".json":
            rows = _read_json(path)
        elif suffix in (".parquet", ".csv"):
            rows = _read_table(path, suffix)
        else:
            raise UserError(f"cannot read '{spec}': expected a {', '.join(FILE_SUFFIXES)} file, a save_to_disk "
                            "folder, a Hub id or toy:prefs / toy:prompts")
    elif path.suffix.lower() in FILE_SUFFIXES or (os.sep in spec and not _looks_like_hub_id(spec)):
        raise UserError(f"'{spec}' does not exist")
    else:
        rows = _read_hub(spec, split)
    return Source(spec, _limited(rows, limit))


def _looks_like_hub_id(spec: str) -> bool:
    return spec.count("/") == 1 and not spec.startswith((".", "/"))


def _limited(rows: Iterator[RawRow], limit: int | None) -> Iterator[RawRow]:
    if limit is not None and limit < 0:
        raise UserError(f"--limit must be 0 or more, got {limit}")
    for n, row in enumerate(rows):
        if limit is not None and n >= limit:
            return
        yield row


def _as_row(index: int, value: Any, line: int | None = None) -> RawRow:
    if isinstance(value, dict):
        return RawRow(index, value, line=line)
    return RawRow(index, None, "wrong type", f"expected a JSON object, got {type(value).__name__}", line)


def _read_jsonl(path: Path) -> Iterator[RawRow]:
    # Blank lines are skipped (not rows); every other line is one row, readable or not.
    index = 0
    with path.open(encoding="utf-8") as f:
        for line_number, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                yield RawRow(index, None, "malformed JSON", exc.msg, line_number)
            else:
                yield _as_row(index, value, line_number)
            index += 1


def _read_json(path: Path) -> Iterator[RawRow]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        # Many ".json" files are really JSON lines; read them line by line (bad lines become rejects).
        yield from _read_jsonl(path)
        return
    if isinstance(data, dict):  # {"data": [...]} or {"train": [...]}: the one list of rows inside
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise UserError(f"'{path}' holds a JSON object; expected a list of rows (or one key holding it)")
        data = lists[0]
    if not isinstance(data, list):
        raise UserError(f"'{path}' must hold a JSON list of rows")
    for index, value in enumerate(data):
        yield _as_row(index, value)


def _read_table(path: Path, suffix: str) -> Iterator[RawRow]:
    import pyarrow.csv
    import pyarrow.parquet

    try:
        table = pyarrow.parquet.read_table(path) if suffix == ".parquet" else pyarrow.csv.read_csv(path)
    except Exception as exc:  # pyarrow raises its own error types for unreadable files
        raise UserError(f"cannot read '{path}': {str(exc).splitlines()[0]}") from exc
    for index, row in enumerate(table.to_pylist()):
        yield RawRow(index, row)


def _iter_dataset(dataset: Any) -> Iterator[RawRow]:
    for index, row in enumerate(dataset):
        yield RawRow(index, dict(row))


def _read_saved(path: Path, split: str) -> Iterator[RawRow]:
    if (path / "manifest.json").is_file():
        raise UserError(f"'{path}' is already a prepared data set (it has manifest.json)")
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(f"'{path}' is not a datasets save_to_disk folder: {str(exc).splitlines()[0]}") from exc
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise UserError(f"'{path}' has no split '{split}' (it has {', '.join(loaded)}); use --split")
        loaded = loaded[split]
    return _iter_dataset(loaded)


def _read_hub(spec: str, split: str) -> Iterator[RawRow]:
    import datasets

    try:
        dataset = datasets.load_dataset(spec, split=split)
    except Exception as exc:  # offline, unknown id, unknown split: all one message for the user
        raise UserError(f"cannot load '{spec}' from the Hugging Face Hub (split '{split}'): "
                        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    return _iter_dataset(dataset)
