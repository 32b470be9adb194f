"""`alignkit train` through the user's entry point on the packaged toy world (skipped if it is not built)."""
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import alignkit
from alignkit.cli import build_app

torch.set_num_threads(1)
ARTIFACTS = Path(alignkit.__file__).parent / "toy" / "artifacts"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (ARTIFACTS / "prefs.jsonl").is_file(), reason="toy world not built")]


def test_qempo_kl_end_to_end_with_poet(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(build_app(), ["train", "qempo", "--constraint", "kl", "--max-steps", "3",
                                              "--poet", "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    resolved = (out / "alignkit.yaml").read_text()
    assert "constraint: kl" in resolved and "objective: qempo" in resolved
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out)


def test_bad_gamma_is_a_one_line_user_error(tmp_path):
    result = CliRunner().invoke(build_app(), ["train", "qempo", "--constraint", "kl", "--gamma", "1.5",
                                              "--output", str(tmp_path)])
    assert result.exit_code == 2 and "--gamma must be in [0, 1], got 1.5" in result.output
