"""The readers on hostile files: every row read is kept or rejected with its reason and line number.

Each case is one file that breaks one rule, with the exact rows `open_source` must yield: (index, line, row) for a
kept row, (index, line, reason) for a reject. docs/data.md, "Reading files", states the rules.
"""
import json

import pytest

from alignkit.config import PrepareConfig
from alignkit.data.prepare import prepare
from alignkit.data.sources import open_source
from alignkit.errors import UserError

BOM = b"\xef\xbb\xbf"
A, B, C = {"prompt": "a"}, {"prompt": "b"}, {"prompt": "c"}


def jl(*rows) -> bytes:
    """JSON lines: dicts are dumped, bytes are written as they are."""
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


# (case, file name, file bytes, [(index, line, kept row or reject reason)])
CASES = [
    ("jsonl: invalid UTF-8 rejects its line alone", "x.jsonl",
     jl(A, b'{"prompt": "b\xff"}', C),
     [(0, 1, A), (1, 2, "invalid UTF-8"), (2, 3, C)]),
    ("jsonl: a lone surrogate escape is invalid text; a surrogate pair is an emoji", "x.jsonl",
     jl(A, b'{"prompt": "\\ud800x"}', b'{"prompt": "\\ud83d\\ude00"}', b'{"k\\udfff": 1}'),
     [(0, 1, A), (1, 2, "invalid text"), (2, 3, {"prompt": "\U0001F600"}), (3, 4, "invalid text")]),
    ("jsonl: encoded surrogate bytes (CESU-8) are invalid UTF-8", "x.jsonl",
     jl(A, b'{"prompt": "\xed\xa0\x80"}'),
     [(0, 1, A), (1, 2, "invalid UTF-8")]),
    ("jsonl: a BOM at the start is read as UTF-8", "x.jsonl",
     BOM + jl(A, B),
     [(0, 1, A), (1, 2, B)]),
    ("jsonl: blank and whitespace lines are not rows", "x.jsonl",
     b"\n" + jl(A) + b"   \n\t\r\n" + jl(b"{bad", B),
     [(0, 2, A), (1, 5, "malformed JSON"), (2, 6, B)]),
    ("jsonl: a raw U+2028 or CR inside a line is not a line break", "x.jsonl",
     jl('{"prompt": "a\u2028b"}'.encode(), b'{"prompt": "c\rd"}', B),  # JSON forbids the raw CR: one reject
     [(0, 1, {"prompt": "a\u2028b"}), (1, 2, "malformed JSON"), (2, 3, B)]),
    ("jsonl: a line that is not an object is a wrong type", "x.jsonl",
     jl([1, 2], A, b'"text"'),
     [(0, 1, "wrong type"), (1, 2, A), (2, 3, "wrong type")]),
    ("json: an array then garbage keeps the array and rejects the rest once", "x.json",
     json.dumps([A, B, C], indent=1).encode() + b"\ngarbage\nmore garbage\n",
     [(0, 2, A), (1, 5, B), (2, 8, C), (3, 12, "malformed JSON")]),
    ("json: a broken element keeps the rows before it, one reject for the rest", "x.json",
     b'[{"prompt": "a"},\n {"prompt": "b"},\n {"prompt": \n {"prompt": "c"}]\n',
     [(0, 1, A), (1, 2, B), (2, 3, "malformed JSON")]),
    ("json: a trailing comma is one reject after the rows", "x.json",
     b'[{"prompt": "a"},\n {"prompt": "b"},\n]\n',
     [(0, 1, A), (1, 2, B), (2, 3, "malformed JSON")]),
    ("json: a file of JSON lines is read line by line", "x.json",
     jl(A, b"{bad", B),
     [(0, 1, A), (1, 2, "malformed JSON"), (2, 3, B)]),
    ("json: a BOM, invalid UTF-8 and a surrogate in an array", "x.json",
     BOM + b'[{"prompt": "a"},\n {"prompt": "\xff"},\n {"prompt": "\\udc80"},\n 7, {"prompt": "b"}]',
     [(0, 1, A), (1, 2, "invalid UTF-8"), (2, 3, "invalid text"), (3, 4, "wrong type"), (4, 4, B)]),
    ("json: an object holding the list of rows", "x.json",
     json.dumps({"data": [A, "x", B]}).encode(),
     [(0, None, A), (1, None, "wrong type"), (2, None, B)]),
    ("csv: a short and a long row are rejects with their lines", "x.csv",
     b"prompt,id\na,1\nshort\nb,2,extra\nc,3\n",
     [(0, 2, {"prompt": "a", "id": "1"}), (1, 3, "wrong number of fields"), (2, 4, "wrong number of fields"),
      (3, 5, {"prompt": "c", "id": "3"})]),
    ("csv: a BOM before the header; cells stay text", "x.csv",
     BOM + b"prompt,id\n42,007\n",
     [(0, 2, {"prompt": "42", "id": "007"})]),
    ("csv: invalid UTF-8 rejects its row alone", "x.csv",
     b"prompt\na\nb\xff\nc\n",
     [(0, 2, A), (1, 3, "invalid UTF-8"), (2, 4, C)]),
    ("csv: blank lines are not rows; a quoted cell spans lines", "x.csv",
     b"prompt,id\n\na,1\n   \n\"two\nlines\",2\nc,3\n",
     [(0, 3, {"prompt": "a", "id": "1"}), (1, 5, {"prompt": "two\nlines", "id": "2"}),
      (2, 7, {"prompt": "c", "id": "3"})]),
    ("csv: a stray quote is a reject on its line and the rows after it are read", "x.csv",
     b"prompt,id\na,1\n\"open,2\nb,3\n\"ab\"x,4\nc,5\n\"never closes,6\nd,7\n",
     [(0, 2, {"prompt": "a", "id": "1"}), (1, 3, "malformed CSV"), (2, 4, {"prompt": "b", "id": "3"}),
      (3, 5, "malformed CSV"), (4, 6, {"prompt": "c", "id": "5"}), (5, 7, "malformed CSV"),
      (6, 8, {"prompt": "d", "id": "7"})]),
]


def outcome(rows):
    return [(r.index, r.line, r.row if r.row is not None else r.error) for r in rows]


@pytest.mark.parametrize("name,data,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_hostile_file_gives_its_exact_rows_and_rejects(tmp_path, name, data, expected):
    path = tmp_path / name
    path.write_bytes(data)
    rows = list(open_source(str(path)).rows)
    assert outcome(rows) == expected
    # rows read = kept + rejected: each row is exactly one of the two, and a reject always says why
    assert all((r.row is None) == (r.error is not None) for r in rows)
    assert [r.index for r in rows] == list(range(len(rows)))


def details(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return {r.line: r.detail for r in open_source(str(path)).rows if r.error}


def test_reject_details_say_what_is_wrong_and_where(tmp_path):
    assert details(tmp_path, "a.jsonl", jl(A, b'{"prompt": "b\xff"}', b'{"p": "\\ud800"}')) == {
        2: "byte 0xff at byte 14 of the line is not UTF-8",
        3: "a string holds a lone surrogate (U+D800), which is not text"}
    assert details(tmp_path, "b.json", b'[{"prompt": "a"}]\nx\ny\n') == {
        2: "extra data after the JSON array; lines 2-3 not read as rows"}
    assert details(tmp_path, "c.csv", b"prompt,id\na\nb\xfe,1\n") == {
        2: "expected 2 fields as in the header, got 1",
        3: "line 3: byte 0xfe at byte 2 of the line is not UTF-8"}


def test_parquet_string_with_invalid_utf8_rejects_its_row_alone(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    prompts = pa.array([b"a", b"b\xff", b"c"], pa.binary()).view(pa.string())  # pyarrow does not validate a view
    pq.write_table(pa.table({"prompt": prompts}), tmp_path / "x.parquet")
    assert outcome(open_source(str(tmp_path / "x.parquet")).rows) == [(0, None, A), (1, None, "invalid UTF-8"),
                                                                      (2, None, C)]


@pytest.mark.parametrize("name,data,message", [
    ("h.csv", b"prompt,prompt\na,b\n", "names column 'prompt' twice"),
    ("h.csv", b"pro\xffmpt\na\n", "the CSV header on line 1 cannot be read"),
    ("h.json", b'{"rows": [1], "more": [2]}', "holds a JSON object"),
    ("h.json", b'"just a string"', "must hold a JSON list of rows"),
])
def test_unreadable_whole_files_are_one_user_error(tmp_path, name, data, message):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(UserError, match=message):
        list(open_source(str(tmp_path / name)).rows)


def test_non_finite_ultrafeedback_scores_are_rejects(tokenizer, tmp_path):
    """Python's json reads NaN / Infinity / -Infinity literals; each becomes a reject, not a NaN column."""
    user = {"role": "user", "content": "What is 2+2?"}

    def row(chosen, rejected):
        return (f'{{"score_chosen": {chosen}, "score_rejected": {rejected}, '
                f'"chosen": [{json.dumps(user)}, {{"role": "assistant", "content": "4"}}], '
                f'"rejected": [{json.dumps(user)}, {{"role": "assistant", "content": "5"}}]}}')

    path = tmp_path / "uf.json"
    path.write_text("[" + ",\n".join([row(9, 2), row("NaN", 1), row(3, "Infinity"), row("-Infinity", 0),
                                      row(8, 1)]) + "]")
    result = prepare(PrepareConfig(data=str(path), output="unused"), tokenizer=tokenizer, progress=False)
    assert result.manifest["format"] == "ultrafeedback"
    assert [(r["source_index"], r["line"], r["reason"], r["detail"]) for r in result.rejects] == [
        (1, 2, "non-finite score", "'score_chosen' is nan as a float"),
        (2, 3, "non-finite score", "'score_rejected' is inf as a float"),
        (3, 4, "non-finite score", "'score_chosen' is -inf as a float")]
    assert result.dataset["score_chosen"] == [9.0, 8.0]
