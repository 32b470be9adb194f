"""prepare() through the Python API: counts, reject reasons, EOS, chat template, truncation, sources."""
import json

import pytest

from alignkit.config import PrepareConfig
from alignkit.data.prepare import prepare
from alignkit.errors import UserError


def run(tokenizer, data, **kw):
    return prepare(PrepareConfig(data=str(data), output="unused", **kw), tokenizer=tokenizer, progress=False)


def reasons(result):
    return {r["source_index"]: r["reason"] for r in result.rejects}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# (fixture, format, read, kept, {source_index: reason})
EXPECTED = [
    ("standard.jsonl", "standard", 9, 3, {2: "malformed JSON", 3: "missing field", 4: "chosen identical to rejected",
                                          5: "empty response", 6: "malformed JSON", 7: "wrong type"}),
    ("conversational.jsonl", "conversational", 3, 1, {1: "wrong type", 2: "chosen identical to rejected"}),
    ("implicit.jsonl", "conversational", 3, 2, {2: "no shared prompt"}),
    ("hh.jsonl", "hh", 4, 2, {2: "no shared prompt", 3: "missing field"}),
    ("ultrafeedback.json", "ultrafeedback", 3, 2, {2: "wrong type"}),
    ("prompts.jsonl", "prompt", 5, 3, {2: "empty prompt", 3: "wrong type"}),
    ("standard.csv", "standard", 3, 2, {1: "chosen identical to rejected"}),
    ("standard.parquet", "standard", 3, 2, {2: "empty response"}),
]


@pytest.mark.parametrize("name,fmt,read,kept,rejected", EXPECTED, ids=[e[0] for e in EXPECTED])
def test_each_fixture_format_gives_its_counts_and_reasons(tokenizer, fixtures, name, fmt, read, kept, rejected):
    result = run(tokenizer, fixtures / name)
    counts = result.manifest["counts"]
    assert result.manifest["format"] == fmt
    assert (counts["read"], counts["kept"], counts["rejected"]) == (read, kept, len(rejected))
    assert counts["read"] == counts["kept"] + counts["rejected"]
    assert reasons(result) == rejected
    assert len(result.dataset) == kept
    assert set(result.dataset["source_index"]).isdisjoint(rejected)


def test_malformed_json_lines_are_reported_by_line_number_and_good_rows_kept(tokenizer, fixtures):
    result = run(tokenizer, fixtures / "standard.jsonl")
    bad = [r for r in result.rejects if r["reason"] == "malformed JSON"]
    # line 6 of the file is blank, so the second bad line is row 6 but line 8
    assert [(r["line"], r["source_index"]) for r in bad] == [(3, 2), (8, 6)]
    assert result.dataset["prompt"] == ["What is 2+2?", "Name a colour.", "Last good row."]


def test_responses_are_tokenized_apart_and_end_with_eos(tokenizer, fixtures):
    row = run(tokenizer, fixtures / "standard.jsonl").dataset[0]
    eos = tokenizer.eos_token_id
    assert row["chosen_input_ids"] == tokenizer("It is 4.", add_special_tokens=False)["input_ids"] + [eos]
    assert row["rejected_input_ids"][-1] == eos
    assert row["prompt_input_ids"] == tokenizer("What is 2+2?")["input_ids"]
    assert row["chosen_length"] == len(row["chosen_input_ids"])
    assert row["prompt_length"] == len(row["prompt_input_ids"])


def test_chat_template_renders_conversational_rows(tokenizer, fixtures):
    result = run(tokenizer, fixtures / "conversational.jsonl")
    row = result.dataset[0]
    assert row["prompt"] == "<|user|>What is 2+2?\n<|assistant|>"
    assert row["chosen"] == "4\n"  # what the template adds after the prompt for this turn
    assert row["prompt_input_ids"] == tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    assert row["chosen_input_ids"] == tokenizer("4\n", add_special_tokens=False)["input_ids"] + [eos]
    assert result.manifest["template"] == "chat"


def test_template_chat_wraps_string_rows_and_plain_flattens_messages(tokenizer, fixtures):
    chat = run(tokenizer, fixtures / "standard.jsonl", template="chat").dataset[0]
    assert chat["prompt"] == "<|user|>What is 2+2?\n<|assistant|>" and chat["chosen"] == "It is 4.\n"
    plain = run(tokenizer, fixtures / "conversational.jsonl", template="plain")
    assert plain.dataset[0]["prompt"] == "user: What is 2+2?\nassistant: "
    assert plain.dataset[0]["chosen"] == "4" and plain.manifest["template"] == "plain"


@pytest.mark.parametrize("name", ["conversational.jsonl", "ultrafeedback.json"])
def test_conversational_rows_need_a_chat_template(fixtures, name):
    from data_helpers import build_tokenizer

    with pytest.raises(UserError, match="no chat template.*--template plain"):
        run(build_tokenizer(chat_template=None), fixtures / name)


def long_row(tmp_path):
    return write_jsonl(tmp_path / "long.jsonl", [
        {"prompt": "Name a colour. What is 2+2?", "chosen": "It is 4. It is 5.", "rejected": "Blue."},
        {"prompt": "Say hi.", "chosen": "hi", "rejected": "bye"},
    ])


def test_truncate_keeps_the_prompt_end_and_the_response_start(tokenizer, tmp_path):
    eos = tokenizer.eos_token_id
    full_prompt = tokenizer("Name a colour. What is 2+2?")["input_ids"]  # 18 tokens
    full_chosen = tokenizer("It is 4. It is 5.", add_special_tokens=False)["input_ids"] + [eos]
    p = len(tokenizer("Say hi.")["input_ids"])  # the second row's prompt: exactly at the prompt limit
    max_length = p + len(tokenizer("hi", add_special_tokens=False)["input_ids"]) + 1  # second row fits exactly
    assert len(full_prompt) > p and len(full_chosen) > max_length - p
    result = run(tokenizer, long_row(tmp_path), max_prompt_length=p, max_length=max_length)
    row = result.dataset[0]
    assert row["prompt_input_ids"] == full_prompt[-p:]
    assert row["chosen_input_ids"] == full_chosen[:max_length - p]
    assert eos not in row["chosen_input_ids"]  # lost to truncation, as documented
    assert row["prompt_length"] + row["chosen_length"] == max_length
    assert result.manifest["counts"]["truncated"] == 1  # rows cut, not responses cut
    second = result.dataset[1]
    assert second["prompt_input_ids"] == tokenizer("Say hi.")["input_ids"]
    assert second["chosen_input_ids"][-1] == eos and second["prompt_length"] + second["chosen_length"] == max_length


def test_reject_policy_leaves_out_rows_over_the_limits(tokenizer, tmp_path):
    p = len(tokenizer("Say hi.")["input_ids"])
    max_length = p + len(tokenizer("hi", add_special_tokens=False)["input_ids"]) + 1
    by_total = run(tokenizer, long_row(tmp_path), max_length=max_length, truncation="reject")
    assert reasons(by_total) == {0: "too long"} and by_total.dataset["source_index"] == [1]
    by_prompt = run(tokenizer, long_row(tmp_path), max_prompt_length=p, truncation="reject")
    assert reasons(by_prompt) == {0: "too long"}  # the second prompt has exactly p tokens: kept
    assert by_prompt.manifest["counts"]["rejected_by_reason"] == {"too long": 1}
    assert by_prompt.manifest["counts"]["truncated"] == 0


def test_limit_reads_only_the_first_rows_and_format_can_be_forced(tokenizer, fixtures):
    limited = run(tokenizer, fixtures / "standard.jsonl", limit=4)
    assert limited.manifest["counts"] == {"read": 4, "kept": 2, "rejected": 2, "truncated": 0, "prompt_cut": 0,
                                          "rejected_by_reason": {"malformed JSON": 1, "missing field": 1}}
    # Forced as prompt-only, the pairwise rows keep just their prompts.
    forced = run(tokenizer, fixtures / "standard.csv", format="prompt")
    assert forced.manifest["kind"] == "prompt" and forced.dataset["prompt"][0] == "What is 2+2?"
    assert "chosen" not in forced.dataset.column_names
    with pytest.raises(UserError, match="unknown format 'standrd'; did you mean 'standard'"):
        run(tokenizer, fixtures / "standard.csv", format="standrd")


def test_save_to_disk_folder_and_dataset_dict_split(tokenizer, tmp_path):
    import datasets

    rows = {"prompt": ["a?", "b?"], "chosen": ["yes", "no"], "rejected": ["no", "no"]}
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "flat"))
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "dict"))
    assert run(tokenizer, tmp_path / "flat").manifest["counts"]["kept"] == 1
    assert reasons(run(tokenizer, tmp_path / "dict", split="test")) == {1: "chosen identical to rejected"}
    with pytest.raises(UserError, match="no split 'train'.*--split"):
        run(tokenizer, tmp_path / "dict")


def test_toy_specs_resolve_through_the_toy_world(tokenizer, fixtures, monkeypatch):
    from alignkit import toy

    monkeypatch.setattr(toy, "resolve", lambda spec: fixtures / "prompts.jsonl", raising=False)
    result = run(tokenizer, "toy:prompts")
    assert result.manifest["kind"] == "prompt" and result.manifest["source"] == "toy:prompts"


def test_manifest_records_tokenizer_hash_and_length_statistics(tokenizer, fixtures):
    from alignkit.data.load import tokenizer_hash

    m = run(tokenizer, fixtures / "hh.jsonl").manifest
    assert m["tokenizer"]["hash"] == tokenizer_hash(tokenizer)
    assert m["kind"] == "pairwise" and m["template"] == "plain"
    lengths = m["lengths"]["chosen_length"]
    assert lengths["min"] <= lengths["mean"] <= lengths["max"] and lengths["min"] >= 2  # >= one token + EOS


def test_missing_file_is_a_user_error(tokenizer, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        run(tokenizer, tmp_path / "nope.jsonl")


def test_unreachable_hub_id_is_one_user_error(tokenizer):
    # Tests run with HF_HUB_OFFLINE=1 (tests/conftest.py): the Hub path must fail in one readable line.
    with pytest.raises(UserError, match="cannot load 'nobody/nothing-here' from the Hugging Face Hub"):
        run(tokenizer, "nobody/nothing-here")


@pytest.mark.slow  # a fresh interpreter importing transformers: 3 s
def test_training_data_prepared_in_memory_never_imports_datasets(tokenizer_dir, tokenizer, fixtures):
    """train on a raw file reads plain columns: no datasets, pyarrow or pandas (0.1 GiB of RSS, half a second); the
    columns are the values `alignkit prepare` saves as Arrow."""
    import subprocess
    import sys

    code = ("import sys\nfrom transformers import AutoTokenizer\nfrom alignkit.data.load import load_prepared\n"
            f"rows = load_prepared({str(fixtures / 'standard.jsonl')!r}, "
            f"AutoTokenizer.from_pretrained({str(tokenizer_dir)!r}), 'pairwise')\n"
            "print(len(rows), rows['source_index'], sorted(m for m in ('datasets', 'pyarrow', 'pandas') "
            "if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "3 [0, 1, 8] []"
    result = run(tokenizer, fixtures / "standard.jsonl")
    assert result.columns.column_names == result.dataset.column_names
    for column in result.columns.column_names:
        assert result.columns[column] == result.dataset[column], column
