"""`alignkit decode` through the user's entry point (CliRunner + build_app) on tiny models saved to tmp_path:
output schema, resume after an interruption, conformative w = 0 against plain decoding, bad input."""
import json

import pytest
from typer.testing import CliRunner

from alignkit.cli import build_app
from alignkit.data.prompts import load_prompts
from alignkit.engine.decode_output import read_complete
from alignkit.errors import UserError


def write_prompts(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def prompts_file(tmp_path):
    return write_prompts(tmp_path / "prompts.jsonl", [{"id": "p1", "prompt": "what is 2+2?"},
                                                      {"prompt": "hello"},
                                                      {"id": 7, "prompt": "a b c"}])


def decode(*args):
    result = CliRunner().invoke(build_app(), ["decode", "--device", "cpu", "--max-new-tokens", "6",
                                              "--batch-size", "4", "--seed", "1", *args])
    return result


def test_decode_writes_one_record_per_sample(saved_models, prompts_file, tmp_path):
    out = tmp_path / "gen.jsonl"
    result = decode("--model", saved_models["instruct"], "--prompts", prompts_file, "--output", str(out),
                    "--num-samples", "3", "--top-p", "0.9")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["prompt_id"], r["sample_id"]) for r in records] == [
        (pid, s) for pid in ("p1", 1, 7) for s in range(3)]  # a row without "id" gets its row index
    first = records[0]
    assert first["prompt"] == "what is 2+2?" and first["decoder"] == "sample" and first["decoder_options"] == {}
    assert first["sampling"]["top_p"] == 0.9 and first["sampling"]["seed"] == 1
    for r in records:
        assert r["finish_reason"] in ("eos", "length") and 1 <= r["num_tokens"] <= 6
        assert (r["num_tokens"] == 6) or r["finish_reason"] == "eos"
        assert r["logprob"] <= 0
    assert "wrote 9 samples for 3 prompts" in result.output


def test_interrupted_run_resumes_without_duplicates(saved_models, prompts_file, tmp_path):
    args = ["--model", saved_models["instruct"], "--prompts", prompts_file, "--num-samples", "3"]
    whole = tmp_path / "whole.jsonl"
    assert decode(*args, "--output", str(whole)).exit_code == 0
    expected = whole.read_text()
    lines = expected.splitlines(keepends=True)
    # interrupted mid-way: 5 complete lines (one batch and a bit) and half of the sixth
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(lines[:5]) + lines[5][:20])
    assert [(str(r["prompt_id"]), r["sample_id"]) for r in read_complete(cut, truncate=True)] == [
        ("p1", 0), ("p1", 1), ("p1", 2), ("1", 0), ("1", 1)]
    assert cut.read_text() == "".join(lines[:5])  # the torn line was cut off
    cut.write_text("".join(lines[:5]) + lines[5][:20])
    result = decode(*args, "--output", str(cut))
    assert result.exit_code == 0, result.output
    assert cut.read_text() == expected  # same samples, same order, nothing twice
    assert "wrote 4 samples" in result.output and "5 already there" in result.output
    again = decode(*args, "--output", str(cut))
    assert again.exit_code == 0 and "nothing to do" in again.output and cut.read_text() == expected


def test_conformative_weight_zero_writes_the_plain_samples(saved_models, prompts_file, tmp_path):
    common = ["--model", saved_models["instruct"], "--prompts", prompts_file, "--num-samples", "2",
              "--top-p", "0.8"]
    plain, mixed, half = tmp_path / "plain.jsonl", tmp_path / "mixed.jsonl", tmp_path / "half.jsonl"
    assert decode(*common, "--output", str(plain)).exit_code == 0
    result = decode(*common, "--output", str(mixed), "--conformative", "--conformative-base-model", saved_models["base"],
                    "--conformative-weight", "0")
    assert result.exit_code == 0, result.output
    texts = lambda p: [json.loads(line)["text"] for line in p.read_text().splitlines()]  # noqa: E731
    assert texts(mixed) == texts(plain)
    record = json.loads(mixed.read_text().splitlines()[0])
    assert record["decoder"] == "conformative"
    assert record["decoder_options"] == {"base_model": saved_models["base"], "weight": 0.0, "mix": "prob",
                                         "truncate_on": "instruct"}
    assert decode(*common, "--output", str(half), "--conformative", "--conformative-base-model", saved_models["base"],
                  "--conformative-weight", "0.5").exit_code == 0
    assert texts(half) != texts(plain)


def test_missing_prompts_file_is_one_line_error(saved_models, tmp_path):
    result = decode("--model", saved_models["instruct"], "--prompts", str(tmp_path / "nope.jsonl"),
                    "--output", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 2
    assert "error: prompts file" in result.output and "does not exist" in result.output
    assert "Traceback" not in result.output


def test_rows_without_prompt_are_reported_and_skipped(saved_models, tmp_path):
    path = write_prompts(tmp_path / "p.jsonl", [{"prompt": "ab"}, {"text": "no prompt"}, {"prompt": "cd"},
                                                {"prompt": ""}])
    out = tmp_path / "o.jsonl"
    result = decode("--model", saved_models["instruct"], "--prompts", path, "--output", str(out))
    assert result.exit_code == 0, result.output
    assert "skipped 2 of 4 rows" in result.output and "(lines 2, 4)" in result.output
    assert [json.loads(line)["prompt"] for line in out.read_text().splitlines()] == ["ab", "cd"]


def test_prompt_files_in_other_formats(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps([{"prompt": "x", "id": "a"}, {"prompt": "y"}]))
    (tmp_path / "p.csv").write_text("id,prompt\nq,hello\nr,\n")
    (tmp_path / "n.csv").write_text("prompt\nhello\nthere\n")
    assert load_prompts(str(tmp_path / "n.csv")) == ([(0, "hello"), (1, "there")], [])
    assert load_prompts(str(tmp_path / "p.json")) == ([("a", "x"), (1, "y")], [])
    assert load_prompts(str(tmp_path / "p.csv")) == ([("q", "hello")], [(3, "empty prompt")])
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"prompt": ["u", "v"]}), tmp_path / "p.parquet")
    assert load_prompts(str(tmp_path / "p.parquet")) == ([(0, "u"), (1, "v")], [])
    with pytest.raises(UserError, match="appears twice"):
        load_prompts(write_prompts(tmp_path / "d.jsonl", [{"id": 1, "prompt": "a"}, {"id": "1", "prompt": "b"}]))


def test_decode_help_lists_the_conformative_switch_and_its_options():
    result = CliRunner().invoke(build_app(), ["decode", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for flag in ("--conformative", "--conformative-base-model", "--conformative-weight", "--conformative-mix", "--conformative-truncate-on", "--top-p", "--min-p"):
        assert flag in result.output


def test_base_model_with_another_vocabulary_is_refused(saved_models, prompts_file, tmp_path):
    from transformers import AutoTokenizer

    other = AutoTokenizer.from_pretrained(saved_models["base"])
    other.add_tokens(["<extra>"])
    other.save_pretrained(saved_models["base"])
    result = decode("--model", saved_models["instruct"], "--prompts", prompts_file, "--output",
                    str(tmp_path / "o.jsonl"), "--conformative", "--conformative-base-model", saved_models["base"])
    assert result.exit_code == 2
    assert "the base model's tokenizer differs from the policy's at token id 44: None vs '<extra>'" in result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_toy_world_defaults_conformative_weight_zero_equals_plain(tmp_path):
    # the defaults: --model toy:instruct --conformative-base-model toy:base --prompts toy:prompts
    plain, mixed = tmp_path / "plain.jsonl", tmp_path / "mixed.jsonl"
    result = decode("--output", str(plain), "--top-p", "0.9")
    assert result.exit_code == 0
    # one line names the toy inputs this run reads: no base model for plain decoding
    assert ("using the toy world: model=toy:instruct, prompts=toy:prompts (pass --model / --prompts for your own)"
            in result.output)
    result = decode("--output", str(mixed), "--top-p", "0.9", "--conformative", "--conformative-weight", "0")
    assert result.exit_code == 0, result.output
    assert "prompts=toy:prompts, conformative_base_model=toy:base (pass --model / --prompts / --conformative-base-model" in result.output
    rows = lambda p: [json.loads(line) for line in p.read_text().splitlines()]  # noqa: E731
    assert [r["text"] for r in rows(mixed)] == [r["text"] for r in rows(plain)]
    assert rows(mixed)[0]["decoder_options"]["base_model"] == "toy:base"
    assert len(rows(plain)) > 0
