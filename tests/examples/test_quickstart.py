"""examples/quickstart.sh runs end to end as a user runs it (every step through the CLI) and leaves what it says:
five trained runs with their exact toy-world figures, seven generation files, the eval report and the plot."""
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import alignkit

ROOT = Path(__file__).parents[2]
RUNS = ("dpo", "hdpo", "qempo", "dpo-poet", "qempo-online")
GENERATIONS = ("instruct", "conformative", *RUNS)
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (Path(alignkit.__file__).parent / "toy" / "artifacts" / "prefs-onpolicy.jsonl").is_file(),
    reason="toy world not built")]


def test_quickstart_runs_the_whole_pipeline(tmp_path):
    out = tmp_path / "qs"
    env = {**os.environ, "ALIGNKIT": f"{shlex.quote(sys.executable)} -m alignkit"}  # this environment's alignkit
    result = subprocess.run(["bash", str(ROOT / "examples" / "quickstart.sh"), str(out)], env=env,
                            capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    plot = out / "eval" / "plots" / "quality_vs_diversity.png"
    assert result.stdout.rstrip().splitlines()[-2] == f"Done. The comparison: {plot}"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    exact = {run: json.loads((out / run / "exact.json").read_text())["after"] for run in RUNS}
    for run in RUNS:
        assert (out / run / "alignkit.yaml").is_file() and (out / run / "metrics.jsonl").is_file()
    # What the pipeline is there to show, exact over every response: on the same on-policy pairs QEMPO keeps far
    # more entropy than DPO (3.65 against 2.43 nats when written) at a higher reward; online QEMPO ends above its
    # target's neighbourhood of 0.85, from toy:instruct's 0.802.
    assert exact["qempo"]["entropy"] > exact["dpo"]["entropy"] + 0.5
    assert exact["qempo"]["expected_reward"] > exact["dpo"]["expected_reward"]
    assert exact["qempo-online"]["expected_reward"] > 0.83

    for name in GENERATIONS:
        assert len((out / "generations" / f"{name}.jsonl").read_text().splitlines()) == 8 * 16
    report = json.loads((out / "eval" / "report.json").read_text())
    assert sorted(f["label"] for f in report["files"]) == sorted(GENERATIONS)
    assert all(f["metrics"]["reward"] is not None for f in report["files"])
