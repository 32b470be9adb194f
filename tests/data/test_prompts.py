"""load_prompts: raw files through the shared reader, prepared prompt sets, resource names; skips and ids."""
import json

import pytest

from alignkit.config import PrepareConfig
from alignkit.data.prepare import prepare
from alignkit.data.save import write
from alignkit.data.prompts import load_prompts
from alignkit.errors import UserError

from data_helpers import build_tokenizer

USER = [{"role": "user", "content": "Tell me a joke."}]


def test_bad_rows_are_skipped_with_their_lines_and_one_warning(tmp_path, capsys):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"\n".join([
        b'{"prompt": "first"}',                     # 1 kept, id 0
        b'{"prompt": "tr\xffuncated"}',             # 2 invalid UTF-8
        b'{"prompt": "x"',                          # 3 malformed JSON
        b'',                                        # 4 blank: not a row
        b'{"text": "no prompt"}',                   # 5 missing field
        b'{"prompt": "   "}',                       # 6 empty prompt
        b'{"prompt": 42}',                          # 7 wrong type
        b'{"prompt": [{"role": "user", "content": 3}]}',  # 8 wrong type: no template takes a number
        b'{"prompt": "\\ud800"}',                   # 9 invalid text
        json.dumps({"prompt": USER}).encode(),      # 10 kept, id 8: unreadable rows keep their index
    ]) + b"\n")
    prompts, skipped = load_prompts(str(path))
    assert prompts == [(0, "first"), (8, USER)]
    assert skipped == [(2, "invalid UTF-8"), (3, "malformed JSON"), (5, "missing field"), (6, "empty prompt"),
                       (7, "wrong type"), (8, "wrong type"), (9, "invalid text")]
    warnings = capsys.readouterr().err.strip().splitlines()
    assert warnings == [f"warning: skipped 7 of 9 rows of {path} without a usable 'prompt' (lines 2, 3, 5, 6, 7, "
                        "8, 9): 2 wrong type, 1 invalid UTF-8, 1 malformed JSON, 1 missing field, 1 empty prompt, "
                        "1 invalid text"]


def test_a_clean_file_warns_nothing_and_ids_come_from_the_id_field_else_the_index(tmp_path, capsys):
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [{"id": "a", "prompt": "x"}, {"prompt": "y"},
                                                      {"id": 7, "prompt": "z"}]) + "\n")
    assert load_prompts(str(path)) == ([("a", "x"), (1, "y"), (7, "z")], [])
    assert capsys.readouterr().err == ""


def test_other_file_kinds_give_the_same_prompts(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "p.json").write_text(json.dumps([{"prompt": "x", "id": "a"}, {"prompt": "y"}]))
    (tmp_path / "p.csv").write_text("id,prompt\nq,hello\nr,\n,42\n")  # r: empty prompt; "" id -> the index
    pq.write_table(pa.table({"prompt": ["u", "v"]}), tmp_path / "p.parquet")
    assert load_prompts(str(tmp_path / "p.json")) == ([("a", "x"), (1, "y")], [])
    assert load_prompts(str(tmp_path / "p.csv")) == ([("q", "hello"), (2, "42")], [(3, "empty prompt")])
    assert load_prompts(str(tmp_path / "p.parquet")) == ([(0, "u"), (1, "v")], [])


def test_a_json_array_with_trailing_garbage_keeps_its_prompts(tmp_path, capsys):
    (tmp_path / "p.json").write_text('[{"prompt": "a"},\n {"prompt": "b"}]\n}\n')
    assert load_prompts(str(tmp_path / "p.json")) == ([(0, "a"), (1, "b")], [(3, "malformed JSON")])
    assert "skipped 1 of 3 rows" in capsys.readouterr().err


def test_duplicate_ids_are_one_user_error_naming_both_lines(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": 1, "prompt": "a"}\n{"prompt": "b"}\n')  # row 1's default id is 1 as well
    with pytest.raises(UserError, match=r"prompt id 1 \(line 2\) appears twice \(first at line 1\)") as err:
        load_prompts(str(path))
    assert "\n" not in str(err.value)


def test_toy_prompts_resolve_through_the_resource_name():
    prompts, skipped = load_prompts("toy:prompts")
    assert len(prompts) == 8 and skipped == []
    assert prompts[0] == (0, "describe the apple :")
    assert [i for i, _ in prompts] == list(range(8))


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="prompts file .* does not exist"):
        load_prompts(str(tmp_path / "nope.jsonl"))


def prepared(tokenizer, tmp_path, rows, name="set", **kw):
    raw = tmp_path / f"{name}.jsonl"
    raw.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = prepare(PrepareConfig(data=str(raw), output="unused", **kw), tokenizer=tokenizer, progress=False)
    return str(write(result, tmp_path / name))


def test_prepared_prompt_sets_give_the_prompts_as_written_with_source_ids(tokenizer, tmp_path):
    folder = prepared(tokenizer, tmp_path, [{"prompt": "Say hi."}, {"prompt": ""}, {"prompt": USER}])
    expected = [(0, "Say hi."), (2, USER)]  # the empty prompt was rejected by prepare; ids are source indices
    assert load_prompts(folder) == (expected, [])
    assert load_prompts(folder, tokenizer) == (expected, [])  # same tokenizer: the hash matches


def test_prepared_sets_are_checked_for_kind_and_tokenizer(tokenizer, tmp_path):
    folder = prepared(tokenizer, tmp_path, [{"prompt": "Say hi."}])
    with pytest.raises(UserError, match="was prepared with tokenizer"):
        load_prompts(folder, build_tokenizer(chat_template=None))
    pairs = prepared(tokenizer, tmp_path, [{"prompt": "p", "chosen": "a", "rejected": "b"}], name="pairs")
    with pytest.raises(UserError, match="holds pairwise data, but prompts are needed here.*--format prompt"):
        load_prompts(pairs)
