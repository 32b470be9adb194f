"""Reading generation files: grouping and malformed lines."""
import json

from alignkit.eval.generations import read_generations

from eval_fixtures import write_jsonl


def test_groups_by_prompt_id_or_prompt_text(tmp_path, diverse_file, collapsed_file):
    decoded = read_generations(diverse_file)
    assert [g.key for g in decoded.groups] == ["0", "1"]
    assert [len(g.texts) for g in decoded.groups] == [3, 3]
    assert decoded.groups[0].num_tokens == [4, 4, 4]
    plain = read_generations(collapsed_file)
    assert [g.key for g in plain.groups] == ["Describe a cat.", "Describe a dog."]
    assert plain.groups[1].num_tokens == [None, None, None]
    assert plain.samples == 6 and plain.malformed == []


def test_malformed_lines_are_reported_with_line_numbers_and_skipped(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [
        {"prompt": "p", "text": "a b"},          # 1 ok
        "{not json",                              # 2
        "",                                       # 3 blank: ignored, not counted
        json.dumps([1, 2]),                       # 4 not an object
        {"prompt": "p"},                          # 5 no text
        {"text": "orphan"},                       # 6 no prompt
        {"prompt_id": 7, "text": "c d"},          # 7 ok (id only)
        {"prompt": 3, "text": "x"},               # 8 prompt not a string
    ])
    gen = read_generations(path)
    assert [n for n, _ in gen.malformed] == [2, 4, 5, 6, 8]
    assert "invalid JSON" in gen.malformed[0][1]
    assert gen.lines == 7 and gen.samples == 2
    assert [g.key for g in gen.groups] == ["p", "7"]


def test_conversational_prompts_from_decode_are_read_with_their_rendered_text(tmp_path):
    messages = [{"role": "user", "content": "describe the sky :"}]
    path = tmp_path / "g.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (
        {"prompt_id": 0, "prompt": messages, "prompt_text": "<user> describe the sky : <assistant>", "text": "blue"},
        {"prompt_id": 0, "prompt": messages, "prompt_text": "<user> describe the sky : <assistant>", "text": "red"},
        {"prompt_id": 1, "prompt": [{"role": "user", "content": "hi"}], "text": "yo"},
        {"prompt_id": 2, "prompt": [{"role": "user"}], "text": "x"})))
    gen = read_generations(path)
    assert [(g.key, g.prompt, g.texts) for g in gen.groups] == [
        ("0", "<user> describe the sky : <assistant>", ["blue", "red"]), ("1", "user: hi\nassistant: ", ["yo"])]
    assert gen.malformed == [(4, "'prompt' is neither a string nor a list of {role, content} messages")]
