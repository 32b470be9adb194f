"""FSDP2 through accelerate's own config on 2 GPUs: trains, checkpoints sharded, resumes, and gathers a final
model from_pretrained loads. Needs 2 CUDA devices (accelerate runs FSDP on GPUs only): skipped elsewhere; the
figures of the last GPU run are in benchmarks/RESULTS.md."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.slow, pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")]
ROOT = Path(__file__).parents[2]


def test_fsdp2_trains_resumes_and_saves_a_loadable_model(tmp_path):
    sys.path.insert(0, str(ROOT / "tests" / "engine"))
    from tiny import save_tiny

    model = save_tiny(tmp_path / "model")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"w{3 + i % 9} w{20 + i % 7}", "chosen": f" w{7 + i % 5}",
                                         "rejected": f" w{30 + i % 11}"}) + "\n" for i in range(16)))
    config = tmp_path / "fsdp2.yaml"
    config.write_text((ROOT / "examples" / "accelerate" / "fsdp2.yaml").read_text()
                      .replace("num_processes: 8", "num_processes: 2"))
    base = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "-m", "alignkit",
            "train", "dpo", "--model", str(model), "--data", str(pairs), "--batch-size", "4", "--max-steps", "4",
            "--save-steps", "2", "--output", str(tmp_path / "run")]
    out = subprocess.run(base, capture_output=True, text=True, timeout=900, env=dict(os.environ))
    assert out.returncode == 0, out.stderr[-3000:]
    resumed = subprocess.run(base + ["--resume"], capture_output=True, text=True, timeout=900, env=dict(os.environ))
    assert resumed.returncode == 0 and "step 4 of 4" in resumed.stdout
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(tmp_path / "run") is not None
