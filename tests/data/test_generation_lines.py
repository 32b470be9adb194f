"""eval's generation reader reads lines through the data layer's JSON-lines reader: same BOM, UTF-8 and surrogate
rules as prepare, and its malformed-line report keeps the line numbers."""
from alignkit.eval.generations import read_generations


def test_bom_invalid_utf8_and_surrogates_spoil_only_their_own_lines(tmp_path):
    path = tmp_path / "gen.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join([
        b'{"prompt_id": 0, "text": "first line after a BOM"}',   # 1 kept (was "invalid JSON")
        b'{"prompt_id": 0, "text": "bad \xff byte"}',            # 2 invalid UTF-8 (failed the whole file)
        b'{"prompt_id": 1, "text": "lone \\ud800"}',             # 3 invalid text (a metric's encode would fail)
        b'',                                                      # 4 blank: not a line read
        b'{"prompt_id": 1, "text": "a\xe2\x80\xa8b"}',           # 5 kept: a raw U+2028 is not a line break
        b'{"prompt_id": 0, "text": "tail"',                      # 6 invalid JSON
    ]) + b"\n")
    gen = read_generations(path)
    assert gen.malformed == [(2, "invalid UTF-8 (byte 0xff at byte 31 of the line is not UTF-8)"),
                             (3, "invalid text (a string holds a lone surrogate (U+D800), which is not text)"),
                             (6, "invalid JSON (Expecting ',' delimiter)")]
    assert gen.lines == 5
    assert [(g.key, g.texts) for g in gen.groups] == [("0", ["first line after a BOM"]), ("1", ["a\u2028b"])]
