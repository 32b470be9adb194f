"""Reading raw rows: one reader per kind of source (.jsonl, .json, .csv, .parquet, a save_to_disk folder, a Hub
id; `toy:prefs` is resolved to its file first) behind `open_source(spec, split, limit)`. The text formats' readers
are here; the typed ones (.parquet, save_to_disk, the Hub) in alignkit.data.typed_sources.

Every row read is yielded as a `RawRow` in source order, readable (`row`) or not (`error`, with the 1-based line in
a text file), so that rows read = kept + rejected, always: invalid UTF-8 on a line, a lone surrogate escape, a
malformed JSON line, a CSV row with the wrong number of fields are each one reject and the rest of the file is
read. Blank lines are not rows; a BOM at the start of a text file is dropped (docs/data.md, "Reading files").
"""
from __future__ import annotations

import csv
import itertools
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignkit.errors import UserError

FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")

# Reject reasons the readers give (the format converters add their own, e.g. "missing field").
INVALID_UTF8 = "invalid UTF-8"                # bytes that do not decode as UTF-8
INVALID_TEXT = "invalid text"                 # a lone surrogate (a "\ud800" escape): no tokenizer can encode it
MALFORMED_JSON = "malformed JSON"
WRONG_TYPE = "wrong type"                     # JSON that is not an object
MALFORMED_CSV = "malformed CSV"               # a quoting error in a CSV record
WRONG_FIELD_COUNT = "wrong number of fields"  # a CSV row shorter or longer than the header

BOM = b"\xef\xbb\xbf"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# A clean UTF-8 line can only carry a lone surrogate as a JSON escape: look for one before walking a parsed row.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_WHITESPACE = re.compile(r"[ \t\n\r]*")        # JSON's whitespace
_DECODER = json.JSONDecoder()
_CSV_FIELD_LIMIT = 2**31 - 1                   # the csv module's default (128 KiB) refuses long responses


@dataclass
class RawRow:
    index: int                      # 0-based position in the source: `source_index` in the output and rejects
    row: dict | None                # the parsed row, or None when it could not be read
    error: str | None = None        # reject reason when row is None
    detail: str | None = None       # e.g. the JSON decoder's message
    line: int | None = None         # 1-based line where the row starts, in .jsonl, .csv and .json-array files


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
    from alignkit.data import typed_sources  # the Arrow-backed readers (it imports this module's rows)

    path = Path(resolve_spec(spec))
    if path.is_dir():
        rows = typed_sources.read_saved(path, split)
    elif path.is_file():
        readers = {".jsonl": read_json_lines, ".json": _read_json, ".csv": _read_csv,
                   ".parquet": typed_sources.read_parquet}
        reader = readers.get(path.suffix.lower())
        if reader is None:
            raise UserError(f"cannot read '{spec}': expected a {', '.join(FILE_SUFFIXES)} file, a save_to_disk "
                            "folder, a Hub id or toy:prefs / toy:prompts")
        rows = reader(path)
    elif missing(spec):
        raise UserError(f"'{spec}' does not exist")
    else:
        rows = typed_sources.read_hub(spec, split)
    return Source(spec, _limited(rows, limit))


def missing(spec: str) -> bool:
    """Whether a data spec names a local file or folder that is not there (a Hub id or a registered resource is
    not missing): train asks before it loads a model, so a mistyped path fails in a second, not after minutes."""
    path = Path(resolve_spec(spec))
    if path.exists():
        return False
    return path.suffix.lower() in FILE_SUFFIXES or (os.sep in spec and not _looks_like_hub_id(spec))


def _looks_like_hub_id(spec: str) -> bool:
    return spec.count("/") == 1 and not spec.startswith((".", "/"))


def _limited(rows: Iterator[RawRow], limit: int | None) -> Iterator[RawRow]:
    if limit is not None and limit < 0:
        raise UserError(f"--limit must be 0 or more, got {limit}")
    for n, row in enumerate(rows):
        if limit is not None and n >= limit:
            return
        yield row


# ----------------------------------------------------------------------------------------------------------
# Text: decoding and checking


def _without_bom(data: bytes) -> bytes:
    return data[len(BOM):] if data.startswith(BOM) else data


def _undecodable(data: bytes) -> str | None:
    """Why `data` is not UTF-8 (the first bad byte and its 1-based position), or None."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"byte 0x{data[exc.start]:02x} at byte {exc.start + 1} of the line is not UTF-8"
    return None


def _lone_surrogate(value: Any) -> str | None:
    """The first lone surrogate anywhere in a parsed JSON value (keys included), as 'U+D800', or None."""
    if isinstance(value, str):
        found = _LONE_SURROGATE.search(value)
        return f"U+{ord(found.group()):04X}" if found else None
    if isinstance(value, dict):
        return next((s for k, v in value.items() for s in (_lone_surrogate(k), _lone_surrogate(v)) if s), None)
    if isinstance(value, list):
        return next((s for v in value if (s := _lone_surrogate(v))), None)
    return None


def _checked(index: int, value: Any, line: int | None, from_bad_bytes: bool = False) -> RawRow:
    """A parsed JSON value as a row: an object without lone surrogates, or a reject saying why not.
    `from_bad_bytes`: its text held bytes read with surrogateescape (each one a lone surrogate), so a surrogate
    here is invalid UTF-8 rather than a "\\ud800" escape."""
    if not isinstance(value, dict):
        return RawRow(index, None, WRONG_TYPE, f"expected a JSON object, got {type(value).__name__}", line)
    surrogate = _lone_surrogate(value)
    if surrogate is None:
        return RawRow(index, value, line=line)
    if from_bad_bytes:
        return RawRow(index, None, INVALID_UTF8, "the row holds bytes that are not UTF-8", line)
    return RawRow(index, None, INVALID_TEXT, f"a string holds a lone surrogate ({surrogate}), which is not text",
                  line)


# ----------------------------------------------------------------------------------------------------------
# JSON lines: .jsonl files, .json files that are really JSON lines, and eval's generation files


def _text_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw bytes) of a text file, the BOM dropped from line 1.

    Lines end at b"\\n" only: a raw U+2028 or a lone \\r inside a JSON string is not a line break (text-mode
    reading and str.splitlines would cut such a row in two). Bytes, so one undecodable line fails alone.
    """
    with path.open("rb") as f:
        for number, data in enumerate(f, start=1):
            yield number, (_without_bom(data) if number == 1 else data)


def _json_line(index: int, number: int, data: bytes) -> RawRow:
    """One non-blank line of JSON lines as a row or a reject (invalid UTF-8, malformed JSON, wrong type...)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return RawRow(index, None, INVALID_UTF8, _undecodable(data), number)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError; an integer of 4,300+ digits; deep nesting
        return RawRow(index, None, MALFORMED_JSON, getattr(exc, "msg", None) or str(exc), number)
    if not _SURROGATE_ESCAPE.search(text) and isinstance(value, dict):
        return RawRow(index, value, line=number)  # the common case, without walking the row
    return _checked(index, value, number)


def read_json_lines(path: Path) -> Iterator[RawRow]:
    """Every non-blank line of a JSON-lines file as one row, readable or not."""
    index = 0
    for number, data in _text_lines(path):
        if data.strip():
            yield _json_line(index, number, data)
            index += 1


# ----------------------------------------------------------------------------------------------------------
# .json: one array of rows (or an object holding it); a file that is really JSON lines is read as such


def _skip(text: str, pos: int) -> int:
    return _WHITESPACE.match(text, pos).end()  # type: ignore[union-attr]  (the pattern matches the empty string)


def _read_json(path: Path) -> Iterator[RawRow]:
    data = _without_bom(path.read_bytes())
    try:
        text, clean = data.decode("utf-8"), True
    except UnicodeDecodeError:  # bad bytes become lone surrogates (U+DC80..U+DCFF), rejected per row below
        text, clean = data.decode("utf-8", "surrogateescape"), False
    start = _skip(text, 0)
    if start == len(text):
        return
    if text[start] == "[":
        yield from _json_array(text, start, clean)
        return
    try:
        value, end = _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError):
        value, end = None, -1
    if end == -1 or _skip(text, end) < len(text):
        # Not one JSON document: many ".json" files are JSON lines, so read it line by line (bad lines reject).
        yield from read_json_lines(path)
        return
    if isinstance(value, dict):  # {"data": [...]} or {"train": [...]}: the one list of rows inside
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise UserError(f"'{path}' holds a JSON object; expected a list of rows (or one key holding it)")
        value = lists[0]
    if not isinstance(value, list):
        raise UserError(f"'{path}' must hold a JSON list of rows")
    for index, item in enumerate(value):
        yield _checked(index, item, None, not clean)


def _json_array(text: str, start: int, clean: bool) -> Iterator[RawRow]:
    """The rows of a top-level JSON array, parsed one element at a time so that each has its line number and
    damage (a broken element, data after the closing bracket) is ONE reject, after the rows before it are kept."""
    index, line, counted = 0, 1, 0

    def line_at(pos: int) -> int:  # counted incrementally: the file is scanned once, not once per row
        nonlocal line, counted
        line += text.count("\n", counted, pos)
        counted = pos
        return line

    def rest(pos: int, why: str) -> RawRow:
        first, last = line_at(pos), text.count("\n", 0, len(text.rstrip())) + 1
        span = f"line {first}" if first == last else f"lines {first}-{last}"
        return RawRow(index, None, MALFORMED_JSON, f"{why}; {span} not read as rows", first)

    pos = _skip(text, start + 1)
    if text.startswith("]", pos):
        pos += 1
    else:
        while True:
            try:
                value, end = _DECODER.raw_decode(text, pos)
            except (ValueError, RecursionError) as exc:  # as in _json_line
                yield rest(pos, getattr(exc, "msg", None) or str(exc))
                return
            bad_bytes = not clean and _LONE_SURROGATE.search(text, pos, end) is not None
            if isinstance(value, dict) and not bad_bytes and not _SURROGATE_ESCAPE.search(text, pos, end):
                yield RawRow(index, value, line=line_at(pos))  # the common case, without walking the row
            else:
                yield _checked(index, value, line_at(pos), bad_bytes)
            index += 1
            pos = _skip(text, end)
            if text.startswith(",", pos):
                pos = _skip(text, pos + 1)
            elif text.startswith("]", pos):
                pos += 1
                break
            else:
                yield rest(pos, "expected ',' or ']' after a row")
                return
    pos = _skip(text, pos)
    if pos < len(text):
        yield rest(pos, "extra data after the JSON array")


# ----------------------------------------------------------------------------------------------------------
# .csv: header on line 1, every cell a string (no type guessing: a prompt "42" stays text)


def _read_csv(path: Path) -> Iterator[RawRow]:
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    data = _without_bom(path.read_bytes())
    raw: list[bytes] | None = None  # the lines as bytes, kept only to name a bad byte
    try:
        lines = _split_lines(data.decode("utf-8"))
    except UnicodeDecodeError:  # bad bytes become lone surrogates, found per record below
        raw = _split_lines(data)
        lines = [line.decode("utf-8", "surrogateescape") for line in raw]
    records = _csv_records(lines)
    header = next(records, None)
    if header is None:
        return
    first, _, cells, error = header
    if error or cells is None or any(_LONE_SURROGATE.search(c) for c in cells):
        raise UserError(f"'{path}': the CSV header on line {first} cannot be read "
                        f"({error or 'it is not UTF-8'}); fix the header line")
    if len(set(cells)) < len(cells):
        repeated = next(c for c in cells if cells.count(c) > 1)
        raise UserError(f"'{path}': the CSV header names column '{repeated}' twice; give each column one name")
    for index, (number, end, row, error) in enumerate(records):
        if row is None:
            yield RawRow(index, None, MALFORMED_CSV, error, number)
        elif raw is not None and any(_LONE_SURROGATE.search(c) for c in row):
            bad = next((n for n in range(number, end + 1) if _undecodable(raw[n - 1])), number)
            yield RawRow(index, None, INVALID_UTF8, f"line {bad}: {_undecodable(raw[bad - 1])}", number)
        elif len(row) != len(cells):
            yield RawRow(index, None, WRONG_FIELD_COUNT,
                         f"expected {len(cells)} fields as in the header, got {len(row)}", number)
        else:
            yield RawRow(index, dict(zip(cells, row)), line=number)


def _split_lines(data: Any) -> list:
    """The lines of `data` (bytes or str) with their "\\n" kept, as csv.reader wants; only "\\n" ends a line."""
    end = b"\n" if isinstance(data, bytes) else "\n"
    parts = data.split(end)
    return [part + end for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _csv_records(lines: list[str]) -> Iterator[tuple[int, int, list[str] | None, str | None]]:
    """(first line, last line, cells, None) per record, 1-based, or (line, line, None, why) for a record that
    breaks CSV's quoting (a quote that never closes, text after a closing quote). Blank lines are not records.

    Strict quoting, and after such an error reading starts again on the line after the record's first: by the
    grammar, a stray quote would swallow the lines after it (to the next quote, or to the end of the file) into
    one cell; so only its own line is the reject and the rows after it are read.
    """
    base, done = 0, 0  # lines before the current csv.reader started; lines it had read after its last record
    reader = csv.reader(iter(lines), strict=True)
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield base + done + 1, base + done + 1, None, f"bad quoting ({exc})"
            base, done = base + done + 1, 0
            reader = csv.reader(itertools.islice(lines, base, None), strict=True)
            continue
        start, done = base + done + 1, reader.line_num
        if cells and not (len(cells) == 1 and not cells[0].strip()):
            yield start, base + done, cells, None
