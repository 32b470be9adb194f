"""The installed package through alignkit's own entry point: `alignkit plugins` lists it, `alignkit train ipo`
(with --poet) trains on the toy world, `alignkit eval` computes its metric. Run after `pip install .`."""
import json
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from typer.testing import CliRunner

import alignkit
from alignkit.cli import build_app

PREFS = Path(alignkit.__file__).parent / "toy" / "artifacts" / "prefs.jsonl"
INSTALLED = any(ep.name == "ipo" for ep in entry_points(group="alignkit"))
pytestmark = pytest.mark.skipif(not INSTALLED, reason="not installed: pip install ./examples/alignkit-plugin-example")


def test_alignkit_plugins_lists_the_objective_and_the_metric():
    result = CliRunner().invoke(build_app(), ["plugins", "--all"])
    assert result.exit_code == 0, result.output
    assert "ipo" in result.output and "distinct-openings" in result.output and "2310.12036v2" in result.output


def test_train_help_shows_its_options():
    result = CliRunner().invoke(build_app(), ["train", "ipo", "--help"])
    assert result.exit_code == 0 and "--beta" in result.output and "--normalize" in result.output
    assert "--poet" in result.output  # transforms compose with every pairwise objective


@pytest.mark.slow
def test_train_ipo_with_poet_on_the_toy_world(tmp_path):
    import torch

    torch.set_num_threads(1)
    data = tmp_path / "pairs.jsonl"  # 4 of toy:prefs' pairs, one batch: every step sees the same pairs
    data.write_text("".join(PREFS.read_text().splitlines(keepends=True)[:4]))
    out = tmp_path / "ipo"
    result = CliRunner().invoke(build_app(), ["train", "ipo", "--poet", "--beta", "0.5", "--data", str(data),
                                              "--max-steps", "3", "--batch-size", "4", "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    # Step 1: the policy is the reference, so the margin is 0 and the loss is the squared target (1/(2·0.5))² = 1.
    assert rows[0]["loss"] == pytest.approx(1.0, abs=1e-5) and rows[0]["rewards/margins"] == pytest.approx(0.0)
    assert rows[0]["loss"] > rows[1]["loss"] > rows[2]["loss"]  # descends on the one batch
    assert "poet: true" in (out / "alignkit.yaml").read_text()
    assert json.loads((out / "exact.json").read_text())["after"]["kl"] > 0  # the toy world's exact figures


def test_eval_computes_distinct_openings(tmp_path):
    gens = tmp_path / "gens.jsonl"
    gens.write_text("".join(json.dumps({"prompt": "describe the sky :", "text": t}) + "\n"
                            for t in ("blue", "blue", "it is blue", "bright and blue")))
    result = CliRunner().invoke(build_app(), ["eval", str(gens), "--metrics", "distinct-openings",
                                              "--bootstrap", "0", "--output", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["files"][0]["metrics"]["distinct-openings"]["mean"] == 0.75  # 3 openings of 4 samples
