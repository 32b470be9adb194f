"""`alignkit prepare` through the CLI, the files it writes, and load_prepared on them."""
import json

import pytest
from typer.testing import CliRunner

from alignkit.cli import build_app
from alignkit.errors import UserError


def prepare_cli(*args):
    result = CliRunner().invoke(build_app(), ["prepare", *map(str, args)])
    return result


def test_cli_writes_dataset_manifest_and_rejects_and_prints_the_counts(tokenizer_dir, fixtures, tmp_path):
    import datasets

    out = tmp_path / "prepared"
    result = prepare_cli(fixtures / "standard.jsonl", "--model", tokenizer_dir, "--output", out)
    assert result.exit_code == 0, result.output
    assert "9 rows read = 3 kept + 6 rejected" in result.output
    assert "malformed JSON (lines 3, 8)" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["read"] == 9 and manifest["format"] == "standard" and manifest["kind"] == "pairwise"
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert [r["source_index"] for r in rejects] == [2, 3, 4, 5, 6, 7]
    assert [r.get("line") for r in rejects if r["reason"] == "malformed JSON"] == [3, 8]
    dataset = datasets.load_from_disk(str(out))
    assert dataset["source_index"] == [0, 1, 8]
    assert {"prompt_input_ids", "chosen_input_ids", "rejected_input_ids", "chosen_length"} <= set(
        dataset.column_names)


def test_cli_user_errors_print_one_line_and_exit_2(tokenizer_dir, fixtures, tmp_path):
    result = prepare_cli(fixtures / "standard.jsonl", "--model", tokenizer_dir, "--output", tmp_path / "o",
                         "--format", "hhh")
    assert result.exit_code == 2
    assert "error: unknown format 'hhh'; did you mean 'hh'?" in result.output


def test_num_proc_gives_the_same_rows_as_one_process(tokenizer, tmp_path, monkeypatch):
    from alignkit.config import PrepareConfig
    from alignkit.data import prepare as P

    monkeypatch.setattr(P, "CHUNK", 2)  # several chunks from a small file
    rows = [{"prompt": f"q{i}?", "chosen": "yes" * (i + 1), "rejected": "no"} for i in range(7)] + [{"prompt": "x"}]
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    one = P.prepare(PrepareConfig(data=str(path), output=""), tokenizer=tokenizer, progress=False)
    two = P.prepare(PrepareConfig(data=str(path), output="", num_proc=2), tokenizer=tokenizer, progress=False)
    assert one.dataset.to_dict() == two.dataset.to_dict() and one.rejects == two.rejects
    assert one.rejects == [{"source_index": 7, "reason": "missing field", "detail": "'chosen'", "line": 8}]


def test_load_prepared_checks_kind_and_tokenizer(tokenizer, tokenizer_dir, fixtures, tmp_path):
    from data_helpers import build_tokenizer

    from alignkit.data.load import load_prepared, tokenizer_hash

    out = tmp_path / "prepared"
    assert prepare_cli(fixtures / "hh.jsonl", "--model", tokenizer_dir, "--output", out).exit_code == 0
    assert load_prepared(str(out), tokenizer, "pairwise")["source_index"] == [0, 1]
    with pytest.raises(UserError, match="holds pairwise data, but prompt data is needed"):
        load_prepared(str(out), tokenizer, "prompt")
    other = build_tokenizer(vocab_size=280)
    assert tokenizer_hash(other) != tokenizer_hash(tokenizer)
    with pytest.raises(UserError, match="was prepared with tokenizer .*run alignkit prepare again with --model"):
        load_prepared(str(out), other, "pairwise")
    # Same vocabulary, different chat template: a different hash too.
    assert tokenizer_hash(build_tokenizer(chat_template="{{ messages }}")) != tokenizer_hash(tokenizer)


def test_load_prepared_prepares_raw_data_on_the_fly(tokenizer, fixtures, capsys):
    from alignkit.data.load import load_prepared

    dataset = load_prepared(str(fixtures / "prompts.jsonl"), tokenizer, "prompt", max_prompt_length=4)
    assert dataset["prompt_length"] == [4, 4, 4]  # every kept prompt cut to its last 4 tokens
    assert "3 of 5 rows kept, 2 rejected" in capsys.readouterr().out


def test_a_file_whose_every_row_is_rejected_is_an_error_with_the_reasons_and_writes_nothing(tmp_path):
    from typer.testing import CliRunner

    from alignkit.cli import build_app

    data = tmp_path / "bad.jsonl"
    data.write_text('{"prompt": "a", "chosen": "same", "rejected": "same"}\n{not json\n')
    out = tmp_path / "prepared"
    result = CliRunner().invoke(build_app(), ["prepare", str(data), "--output", str(out)])
    assert result.exit_code == 2
    assert "error: no row of" in result.output and "2 read: 1 chosen identical to rejected, 1 malformed JSON" in \
        result.output
    assert "Traceback" not in result.output
    assert not out.exists()
