#!/usr/bin/env bash
# Every GPU check in one run, for a short GPU window: the GPU tests (fast paths vs their plain twins in fp32 and
# bf16, FSDP2 where there are 2 GPUs) and the --gpu benchmark presets, each writing JSON under $OUT.
#
#   OUT=/tmp/gpu-results bash benchmarks/gpu.sh
#
# Needs torch with CUDA, transformers, peft, accelerate, pytest and, for the DPOTrainer side of
# train_throughput.py, trl and datasets (install them, or put their wheels on PYTHONPATH first). Add a row per
# figure to benchmarks/RESULTS.md with the device, the versions this prints and the command.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
$PY - <<'PY' | tee "$OUT/versions.json"
import json, torch, transformers
print(json.dumps({"torch": torch.__version__, "transformers": transformers.__version__,
                  "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}))
PY
$PY -m pytest -q -p no:cacheprovider tests/gpu --junitxml="$OUT/gpu-tests.xml" 2>&1 | tee "$OUT/gpu-tests.log"
$PY benchmarks/train_throughput.py --gpu --json "$OUT/train_throughput.json" 2>&1 | tee "$OUT/train_throughput.log"
$PY benchmarks/decode_throughput.py --gpu --json "$OUT/decode_throughput.json" 2>&1 | tee "$OUT/decode_throughput.log"
