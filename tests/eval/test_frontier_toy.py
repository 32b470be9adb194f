"""`alignkit frontier` end to end on the toy world, through the CLI and alignkit's real subprocesses (slow lane).

The shipped quick spec (examples/frontier/toy-quick.yaml) runs once for the module, with --jobs 2, as CI runs it."""
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alignkit import toy
from alignkit.cli import build_app
from alignkit.eval.frontier.analysis import pareto

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "examples" / "frontier" / "toy-quick.yaml"
PNG = b"\x89PNG\r\n\x1a\n"


def frontier(*args):
    return CliRunner().invoke(build_app(), ["frontier", *map(str, args)])


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("frontier")
    result = frontier(QUICK, "--output", tmp / "out", "--jobs", "2")
    assert result.exit_code == 0, result.output
    return {"out": tmp / "out", "spec": QUICK, "output": result.output,
            "doc": json.loads((tmp / "out" / "frontier.json").read_text())}


def test_quick_spec_writes_the_frontier(quick):
    doc, out = quick["doc"], quick["out"]
    instruct = json.loads((toy.ARTIFACTS / "report.json").read_text())["exact"]["instruct"]
    # The start is eval --exact of toy:instruct: the shipped world's own figures.
    assert doc["start"]["quality"] == pytest.approx(instruct["expected_reward"], abs=1e-5)
    assert doc["start"]["diversity"] == pytest.approx(instruct["entropy"], abs=1e-5)
    assert doc["metrics"] == {"quality": {"name": "expected_reward", "higher_is_better": True},
                              "diversity": {"name": "entropy", "higher_is_better": True}, "source": "exact"}
    trained = [p for p in doc["points"] if p["method"] in ("dpo", "qempo-kl")]
    assert [(p["method"], p["params"]) for p in trained] == [
        ("dpo", {"beta": 1.0}), ("dpo", {"beta": 5.0}), ("qempo-kl", {"gamma": 0.25}), ("qempo-kl", {"gamma": 0.75})]
    for p in trained:  # each is its own trained model, better and narrower than the start
        assert p["quality"] > doc["start"]["quality"] and p["diversity"] < doc["start"]["diversity"]
        assert p["quality_ci"] is None  # exact figures have no interval
        stored = json.loads((out / p["run"] / "point.json").read_text())
        assert stored["quality"]["mean"] == p["quality"] and (out / p["model"] / "model.safetensors").is_file()
        assert p["model"].startswith("models/") and stored["model_reused"] is False
    assert len({p["quality"] for p in trained}) == 4
    # DPO's beta pulls toward the start: beta 5 keeps more entropy than beta 1.
    assert trained[1]["diversity"] > trained[0]["diversity"]
    pairs = [(p["quality"], p["diversity"]) for p in doc["points"]]
    assert [p["pareto"] for p in doc["points"]] == pareto(pairs) and any(p["pareto"] for p in doc["points"])
    assert (out / "frontier.png").read_bytes()[:8] == PNG
    md = (out / "frontier.md").read_text()
    assert "## dpo (train dpo)" in md and "## qempo-kl (train qempo)" in md and "## Matched quality" in md
    assert quick["output"].count("done in") == len(doc["points"]) + 1


def test_a_rerun_reuses_every_point(quick):
    before = {p["run"]: (p["quality"], p["diversity"]) for p in quick["doc"]["points"]}
    started = time.monotonic()
    result = frontier(quick["spec"], "--output", quick["out"], "--jobs", "2")
    assert result.exit_code == 0, result.output
    assert result.output.count(": reused (") == len(before) + 1 and "done in" not in result.output
    assert time.monotonic() - started < 60  # reading point.json files, not training
    doc = json.loads((quick["out"] / "frontier.json").read_text())
    assert {p["run"]: (p["quality"], p["diversity"]) for p in doc["points"]} == before


def test_conformative_at_weight_zero_is_the_instruct_model_exactly(quick):
    doc = quick["doc"]
    zero = next(p for p in doc["points"] if p["method"] == "conformative" and p["params"]["weight"] == 0)
    half = next(p for p in doc["points"] if p["method"] == "conformative" and p["params"]["weight"] == 0.5)
    assert zero["quality"] == pytest.approx(doc["start"]["quality"], abs=1e-6)
    assert zero["diversity"] == pytest.approx(doc["start"]["diversity"], abs=1e-6)
    # Mixing in the base model spreads the mass and costs reward (docs/algorithms/conformative.md).
    assert half["diversity"] > zero["diversity"] + 0.5 and half["quality"] < zero["quality"] - 0.1


def test_sampled_conformative_at_weight_zero_samples_what_the_start_samples(tmp_path):
    """Sampled eval: the same seed, prompts and sample count, and weight 0 is plain sampling, so the point's
    reward and distinct-2 (and their bootstrap intervals) are the start's to the last digit."""
    spec = tmp_path / "sampled.yaml"
    spec.write_text("model: toy:instruct\neval: {reward: toy, num_samples: 4, bootstrap: 100}\nmethods:\n"
                    "  - {name: conformative, decode: {decoder: conformative, base_model: toy:base}, "
                    "sweep: {weight: [0]}}\n")
    result = frontier(spec, "--output", tmp_path / "out", "--jobs", "2")
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "out" / "frontier.json").read_text())
    (zero,), start = doc["points"], doc["start"]
    assert doc["metrics"]["quality"] == {"name": "reward", "higher_is_better": True}
    assert doc["metrics"]["diversity"] == {"name": "distinct-2", "higher_is_better": True}
    assert zero["quality"] == start["quality"] and zero["diversity"] == start["diversity"]
    assert zero["quality_ci"] == start["quality_ci"] and zero["quality_ci"][0] < zero["quality"] < zero["quality_ci"][1]
    assert 0.5 < start["quality"] < 1.0  # toy:instruct's reward on its own samples (exact E[r] 0.80)
