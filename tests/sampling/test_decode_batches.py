"""How `alignkit decode` cuts its work into batches, and what a seed means across batch layouts: through the
user's entry point (CliRunner + build_app), on the tiny models of conftest saved to tmp_path."""
import json
from types import SimpleNamespace

from test_decode import write_prompts
from typer.testing import CliRunner

from alignkit.cli import build_app
from alignkit.engine.decode import cut_batches

JOBS = [(p, s) for p in range(3) for s in range(4)]  # 3 prompts x 4 samples, in decode's order


def cfg(batch_size=None, batch_tokens=16384, max_new_tokens=10):
    return SimpleNamespace(batch_size=batch_size, batch_tokens=batch_tokens, max_new_tokens=max_new_tokens)


def test_an_explicit_batch_size_cuts_fixed_row_counts():
    batches = cut_batches(JOBS, [5, 5, 5], cfg(batch_size=5))
    assert [len(b) for b in batches] == [5, 5, 2] and sum(batches, []) == JOBS


def test_by_default_a_batch_takes_rows_while_they_fit_the_token_budget():
    assert cut_batches(JOBS, [5, 5, 5], cfg()) == [JOBS]  # 12 x 15 tokens fit 16384: one batch
    # budget 60: rows x (longest prompt + 10 new tokens); prompt 0 has 2 tokens, prompt 1 has 10, prompt 2 has 4
    batches = cut_batches(JOBS, [2, 10, 4], cfg(batch_tokens=60))
    # prompt 0's 4 rows: 4 x 12 = 48 (a 5th row, of prompt 1, would make 5 x 20); prompt 1: 3 x 20 = 60; its last
    # row and two of prompt 2: 3 x 20 (the longest row sets the width); prompt 2's last two: 2 x 14
    assert [len(b) for b in batches] == [4, 3, 3, 2]
    assert sum(batches, []) == JOBS  # order kept
    for batch in batches:
        assert len(batch) * (max([2, 10, 4][p] for p, _ in batch) + 10) <= 60
    assert [len(b) for b in cut_batches(JOBS, [100, 1, 1], cfg(batch_tokens=50))] == [1, 1, 1, 1, 4, 4]  # >= 1 row
    assert [len(b) for b in cut_batches(JOBS, [5, 5, 5], cfg(), world=2)] == [6, 6]  # every process gets work


def decode(*args):
    result = CliRunner().invoke(build_app(), ["decode", "--device", "cpu", "--max-new-tokens", "8", "--seed", "3",
                                              *map(str, args)])
    assert result.exit_code == 0, result.output
    return result


def samples(path):
    return [(r["prompt_id"], r["sample_id"], r["text"], r["logprob"]) for r in map(json.loads, open(path))]


def test_the_same_samples_whatever_the_batch_layout(saved_models, tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", [{"prompt": "what is 2+2?"}, {"prompt": "hello"},
                                                   {"prompt": "a b c"}])
    common = ["--model", saved_models["instruct"], "--prompts", prompts, "--num-samples", 4, "--top-p", 0.95]
    files = {}
    for name, layout in {"default": [], "rows3": ["--batch-size", 3], "rows1": ["--batch-size", 1],
                         "budget": ["--batch-tokens", 40]}.items():
        files[name] = tmp_path / f"{name}.jsonl"
        decode(*common, *layout, "--output", files[name])
    first = samples(files["default"])
    assert len(first) == 12 and len({t for _, _, t, _ in first}) > 3  # real, varied samples
    for name in ("rows3", "rows1", "budget"):
        got = samples(files[name])
        assert [g[:3] for g in got] == [f[:3] for f in first], name
        assert all(abs(a[3] - b[3]) < 1e-4 for a, b in zip(got, first))
    # more samples per prompt keep the first ones: sample s of a prompt has its own generator
    more = tmp_path / "more.jsonl"
    decode(*common[:-4], "--num-samples", 6, "--top-p", 0.95, "--output", more)
    assert [s[:3] for s in samples(more) if s[1] < 4] == [f[:3] for f in first]


def test_plain_sampling_is_the_reference_path_and_is_recorded(saved_models, tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", [{"prompt": "hello"}])
    fast, plain = tmp_path / "fast.jsonl", tmp_path / "plain.jsonl"
    decode("--model", saved_models["instruct"], "--prompts", prompts, "--num-samples", 3, "--output", fast)
    decode("--model", saved_models["instruct"], "--prompts", prompts, "--num-samples", 3, "--plain-sampling",
           "--output", plain)
    draws = [json.loads(open(f).readline())["sampling"]["draw"] for f in (fast, plain)]
    assert draws == ["inverse-cdf", "multinomial"]
    # a file is continued only by the path that began it: the two draw different samples for a seed
    result = CliRunner().invoke(build_app(), ["decode", "--device", "cpu", "--max-new-tokens", "8", "--seed", "3",
                                              "--model", saved_models["instruct"], "--prompts", prompts,
                                              "--num-samples", "4", "--plain-sampling", "--output", str(fast)])
    assert result.exit_code != 0 and "sampling.draw" in result.output
