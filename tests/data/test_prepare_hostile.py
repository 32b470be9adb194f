"""Property (hypothesis): `prepare` never loses a good row, whatever hostile lines surround it.

A file is a random mix of good standard rows (any text: quotes, commas, CR/LF, U+2028, NUL, a BOM character) and
hostile ones: malformed JSON lines, wrong types, invalid UTF-8 bytes, lone surrogate escapes, blank lines, a BOM
at the start; in .jsonl and .csv. Whatever the mix: rows read = kept + rejected, every good row is kept with its
exact content at its source index, and every hostile row is rejected for its own reason on its own line.
"""
import csv
import io
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alignkit.config import PrepareConfig
from alignkit.data.prepare import prepare
from alignkit.data.sources import open_source

EXAMPLES = 60  # per file kind; ~8 s each on a 2-core CPU

# Any text prepare accepts as a field: non-blank (prepare rejects whitespace-only fields), surrogates excluded
# excluded (category Cs: no UTF-8 file can hold one), with the characters that break naive readers drawn often.
TEXT = st.text(st.one_of(st.characters(exclude_categories=("Cs",)), st.sampled_from(list(',"\n\r\u2028\u0085\ufeff\x00\\ \t'))),
               min_size=1, max_size=12).filter(str.strip)
GOOD = st.tuples(TEXT, TEXT, TEXT).filter(lambda t: t[1] != t[2])
BAD_BYTES = st.sampled_from([b"\xff", b"\x80", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])
BLANK = st.sampled_from([b"", b"  ", b"\t", b" \r"])

# A JSON line with a wrong type: (line for a good row's fields, the reasons it may be rejected for).
WRONG_JSON = st.sampled_from([
    (lambda p, c, r: {"prompt": 3, "chosen": c, "rejected": r}, {"wrong type"}),
    (lambda p, c, r: {"prompt": p, "chosen": ["x"], "rejected": r}, {"wrong type"}),
    (lambda p, c, r: {"prompt": p, "chosen": c, "rejected": None}, {"missing field"}),
    (lambda p, c, r: {"prompt": float("nan"), "chosen": c, "rejected": r}, {"wrong type"}),  # a NaN literal
    (lambda p, c, r: [p, c, r], {"wrong type"}),
    (lambda p, c, r: p, {"wrong type"}),
])

JSONL_GOOD = st.tuples(st.just("good"), GOOD, st.booleans())  # ensure_ascii or raw UTF-8
JSONL_ITEM = st.one_of(
    JSONL_GOOD,
    st.tuples(st.just("malformed JSON"), GOOD),
    st.tuples(st.just("wrong type"), GOOD, WRONG_JSON),
    st.tuples(st.just("invalid UTF-8"), GOOD, BAD_BYTES),
    st.tuples(st.just("invalid text"), GOOD, st.sampled_from(["\ud800", "\udfff", "\udc80"])),
    st.tuples(st.just("blank"), BLANK),
)
CSV_GOOD = st.tuples(st.just("good"), GOOD)
CSV_ITEM = st.one_of(
    CSV_GOOD,
    st.tuples(st.just("wrong number of fields"), st.sampled_from([b"short,row", b"one,two,three,four"])),
    st.tuples(st.just("invalid UTF-8"), BAD_BYTES),
    st.tuples(st.just("empty response"), st.sampled_from([b"q,,r", b"q,c,"])),
    st.tuples(st.just("blank"), BLANK),
)


def files(item, good):
    """A list of items with at least one good row somewhere (format detection needs one), a BOM or not, and the
    line ending: \\n or \\r\\n."""
    return st.tuples(st.tuples(st.lists(item, max_size=8), good, st.lists(item, max_size=8))
                     .map(lambda t: t[0] + [t[1]] + t[2]), st.booleans(), st.sampled_from([b"\n", b"\r\n"]))


def jsonl_line(item) -> bytes:
    if item[0] == "blank":
        return item[1]
    kind, (p, c, r) = item[0], item[1]
    row = {"prompt": p, "chosen": c, "rejected": r}
    if kind == "good":
        return json.dumps(row, ensure_ascii=item[2]).encode()  # \u escapes, or raw UTF-8 (U+2028 unescaped)
    if kind == "malformed JSON":
        return json.dumps(row).encode()[:-1]  # the closing brace lost
    if kind == "wrong type":
        return json.dumps(item[2][0](p, c, r)).encode()
    if kind == "invalid UTF-8":  # bad bytes inside the prompt string
        return b'{"prompt": "' + item[2] + json.dumps(row, ensure_ascii=False).encode()[len('{"prompt": "'):]
    if kind == "invalid text":
        return json.dumps({**row, "prompt": p + item[2]}).encode()  # ensure_ascii writes it as a \\udXXX escape
    raise AssertionError(kind)


def csv_line(item, ending: bytes) -> bytes:
    if item[0] == "good":
        out = io.StringIO()
        # The writer quotes a cell holding a character of its line terminator: with "\r\n", any CR or LF.
        csv.writer(out, lineterminator="\r\n").writerow(item[1])
        return out.getvalue().encode()[:-2] + ending
    if item[0] == "invalid UTF-8":
        return b"ab" + item[1] + b"cd,chosen,rejected" + ending
    return item[1] + ending


def expected(head: bytes, chunks: list):
    """(rows read, good rows as (source_index, prompt, chosen, rejected), {source_index: (item, line)} of the
    hostile rows) for a file of `head` then one chunk of bytes per item; a good CSV row may span lines."""
    line, index, good, hostile = head.count(b"\n") + 1, 0, [], {}
    for item, chunk in chunks:
        if item[0] != "blank":  # blank lines are not rows
            if item[0] == "good":
                good.append((index, *item[1]))
            else:
                hostile[index] = (item, line)
            index += 1
        line += chunk.count(b"\n")
    return index, good, hostile


@pytest.fixture(scope="module")
def toy_tokenizer():
    from alignkit.data.tokenize import load_tokenizer

    return load_tokenizer("toy:instruct")


def check(tokenizer, name: str, head: bytes, chunks: list) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(head + b"".join(chunk for _, chunk in chunks))
        raw = {r.index: r.row for r in open_source(str(path)).rows}
        result = prepare(PrepareConfig(data=str(path), output="unused", model="toy:instruct"),
                         tokenizer=tokenizer, progress=False)
    read, good, hostile = expected(head, chunks)
    counts = result.manifest["counts"]
    assert counts["read"] == read == counts["kept"] + counts["rejected"]
    # The reader hands prepare each good row's exact content; prepare keeps it at its index. (The response
    # columns hold the text of the trained ids, which the toy tokenizer's 36 words cannot round-trip; the plain
    # prompt column is the prompt as written.)
    assert [(i, raw[i]) for i, *_ in good] == [(i, {"prompt": p, "chosen": c, "rejected": r}) for i, p, c, r in good]
    ds = result.dataset
    assert list(zip(ds["source_index"], ds["prompt"])) == [(i, p) for i, p, _, _ in good]
    rejects = {r["source_index"]: r for r in result.rejects}
    assert rejects.keys() == hostile.keys()
    for index, (item, line) in hostile.items():
        allowed = item[2][1] if item[0] == "wrong type" else {item[0]}
        assert rejects[index]["reason"] in allowed and rejects[index]["line"] == line, (item, rejects[index])


@settings(max_examples=EXAMPLES, deadline=None)
@given(files(JSONL_ITEM, JSONL_GOOD))
def test_prepare_keeps_every_good_jsonl_row_among_hostile_lines(toy_tokenizer, file):
    items, bom, ending = file
    check(toy_tokenizer, "hostile.jsonl", b"\xef\xbb\xbf" if bom else b"",
          [(item, jsonl_line(item) + ending) for item in items])


@settings(max_examples=EXAMPLES, deadline=None)
@given(files(CSV_ITEM, CSV_GOOD))
def test_prepare_keeps_every_good_csv_row_among_hostile_lines(toy_tokenizer, file):
    items, bom, ending = file
    check(toy_tokenizer, "hostile.csv", (b"\xef\xbb\xbf" if bom else b"") + b"prompt,chosen,rejected" + ending,
          [(item, csv_line(item, ending)) for item in items])
