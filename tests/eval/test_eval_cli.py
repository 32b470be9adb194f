"""`alignkit eval` end to end through the CLI: report files, plots, comparisons, malformed lines, errors."""
import json

import pytest
from typer.testing import CliRunner

from alignkit.cli import build_app
from eval_fixtures import write_jsonl

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def invoke(*args):
    return CliRunner().invoke(build_app(), ["eval", *map(str, args)])


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 100


def test_compares_two_files_with_a_python_reward(tmp_path, diverse_file, collapsed_file):
    """Reward = fraction of the sample's words that are 'soft': the collapsed file's samples are all
    'soft warm quiet' -> 1/3 each; the diverse file has one 'soft warm quiet <pid>' per prompt -> (1/4)/3."""
    (tmp_path / "soft.py").write_text("def reward(prompts, completions):\n"
                                      "    return [c.split().count('soft') / len(c.split()) for c in completions]\n")
    out = tmp_path / "report"
    result = invoke(diverse_file, collapsed_file, "--reward", f"{tmp_path / 'soft.py'}:reward",
                    "--pass-threshold", "0.3", "--bootstrap", "200", "--output", out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    diverse, collapsed = report["files"]
    assert (diverse["label"], collapsed["label"]) == ("diverse", "collapsed")
    assert collapsed["metrics"]["reward"]["mean"] == pytest.approx(1 / 3)
    assert diverse["metrics"]["reward"]["mean"] == pytest.approx(1 / 12)
    # pass@1 with threshold 0.3: every collapsed sample passes (1/3 >= 0.3), no diverse sample does (1/4).
    assert collapsed["metrics"]["pass@1"]["mean"] == 1.0 and diverse["metrics"]["pass@n"]["mean"] == 0.0
    # Collapsed: 3 identical samples -> distinct-1 = 3/9, self-BLEU = 100. Diverse: 12 words, 10 unique -> 10/12.
    assert collapsed["metrics"]["distinct-1"]["mean"] == pytest.approx(1 / 3)
    assert collapsed["metrics"]["self-bleu"]["mean"] == pytest.approx(100.0)
    assert diverse["metrics"]["distinct-1"]["mean"] == pytest.approx(10 / 12)
    assert diverse["metrics"]["mean-tokens"]["mean"] == 4.0 and collapsed["metrics"]["mean-tokens"] is None
    assert report["metrics"]["self-bleu"] == {"kind": "diversity", "higher_is_better": False,
                                              "help": report["metrics"]["self-bleu"]["help"]}
    assert "embedding-distance" in report["skipped"]
    assert len(diverse["per_prompt"]) == 2 and diverse["per_prompt"][0]["samples"] == 3
    assert_png(out / "plots" / "quality_vs_diversity.png")
    assert_png(out / "plots" / "dist-self-bleu.png")
    assert "plots/quality_vs_diversity.png" in report["plots"]
    md = (out / "report.md").read_text()
    assert "| self-bleu | diversity | ↓ |" in md and "![plots/quality_vs_diversity.png]" in md
    assert "reward" in result.output and "collapsed" in result.output


def test_malformed_lines_are_counted_and_named(tmp_path):
    path = write_jsonl(tmp_path / "gens.jsonl", [{"prompt": "p", "text": "a b"}, "oops",
                                                 {"prompt": "p", "text": "a c"}, {"prompt": "p"}])
    out = tmp_path / "r"
    result = invoke(path, "--metrics", "distinct-1", "--bootstrap", "0", "--output", out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    f = report["files"][0]
    assert f["counts"] == {"lines": 4, "malformed": 2, "evaluated": 2, "prompts": 1, "samples": 2}
    assert [m["line"] for m in f["malformed"]] == [2, 4]
    assert f["metrics"]["distinct-1"]["mean"] == pytest.approx(3 / 4)  # a b a c -> {a, b, c} / 4
    assert "line 2 (invalid JSON" in result.output and "line 4 (no string 'text')" in result.output
    # No quality metric: the trade-off plot falls back and the report says so.
    assert any("no quality metric" in n for n in report["notes"])


def test_bootstrap_is_deterministic_with_a_seed(tmp_path, diverse_file):
    reports = []
    for name in ("a", "b"):
        assert invoke(diverse_file, "--seed", "5", "--bootstrap", "300", "--output", tmp_path / name).exit_code == 0
        reports.append(json.loads((tmp_path / name / "report.json").read_text())["files"][0]["metrics"])
    assert reports[0] == reports[1]
    s = reports[0]["compression-ratio"]
    assert s["ci_low"] <= s["mean"] <= s["ci_high"]


@pytest.mark.parametrize("args, message", [
    (["--metrics", "reward"], "metric 'reward' needs --reward"),
    (["--metrics", "self-blue"], "did you mean 'self-bleu'"),
    (["--reward", "what is this"], "no reward source understands 'what is this'"),
])
def test_user_errors_are_one_line_exit_2(tmp_path, diverse_file, args, message):
    result = invoke(diverse_file, *args, "--output", tmp_path / "r")
    assert result.exit_code == 2
    assert message in result.output


def test_missing_file_and_nothing_to_evaluate(tmp_path):
    assert "does not exist" in invoke(tmp_path / "nope.jsonl", "--output", tmp_path).output
    result = invoke("--output", tmp_path)
    assert result.exit_code == 2 and "give generation files" in result.output
    assert "--exact evaluates a model" in invoke("--exact", "--output", tmp_path).output


def test_a_plot_that_fails_is_a_note_never_a_lost_report(tmp_path, diverse_file, monkeypatch):
    import alignkit.eval.plots as plots

    def broken(doc, folder):
        raise RuntimeError("no usable font cache")

    monkeypatch.setattr(plots, "make_plots", broken)
    out = tmp_path / "report"
    result = CliRunner().invoke(build_app(), ["eval", str(diverse_file), "--output", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "report.json").read_text())
    assert doc["files"][0]["metrics"]["distinct-2"]["mean"] > 0  # the figures are there
    assert doc["plots"] == [] and "no plots: RuntimeError: no usable font cache" in doc["notes"]
    assert not list(out.glob(".*.tmp"))
