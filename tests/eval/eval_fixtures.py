"""Fixtures for eval tests: small generation files written into tmp_path."""
import json

import pytest


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(row if isinstance(row, str) else json.dumps(row))
            f.write("\n")
    return path


@pytest.fixture
def diverse_file(tmp_path):
    """Decode-style rows: 2 prompts x 3 samples, every word distinct within a prompt."""
    rows = []
    for pid, prompt in enumerate(["Describe a cat.", "Describe a dog."]):
        for sid, text in enumerate(["soft warm quiet", "sleepy curious small", "gentle playful proud"]):
            rows.append({"prompt_id": pid, "prompt": prompt, "sample_id": sid, "text": f"{text} {pid}",
                         "num_tokens": 4, "finish_reason": "eos", "logprob": -3.0, "decoder": "sample"})
    return write_jsonl(tmp_path / "diverse.jsonl", rows)


@pytest.fixture
def collapsed_file(tmp_path):
    """Plain {prompt, text} rows: the same answer three times per prompt."""
    rows = [{"prompt": p, "text": "soft warm quiet"} for p in ("Describe a cat.", "Describe a dog.") for _ in range(3)]
    return write_jsonl(tmp_path / "collapsed.jsonl", rows)
