"""fp32 CPU matmuls on SmolLM2's shapes: MKL's sgemm (torch's F.linear) against oneDNN's linear (`--onednn`).

    .venv/bin/python benchmarks/cpu_matmul.py [--json out.json]

For one decoder layer's seven weights (q, k, v, o, gate, up, down) times 30 layers and for the tied LM head
(49152 × 576): the forward at 4, 16 and 64 rows (a decode step's batch) and at 340 rows (a training micro-batch),
and at 340 rows both backward matmuls, the input's gradient g @ W and the weight's gᵀ @ x, as
engine/onednn_linear.py computes them. Each figure is the best of --repeats timed loops of 10 calls, in
milliseconds. Prints whether `--onednn auto` engages on this CPU, so the figures say whether its rule fits here.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from alignkit.engine.onednn_linear import auto_engages, cpu_info, linear, onednn_available

LAYER = [(576, 576), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576), (576, 1536)]  # (N, K)
HEAD, LAYERS = (49152, 576), 30


def best_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(10):
            fn()
        times.append((time.perf_counter() - start) / 10 * 1e3)
    return min(times)


def case(shapes: list[tuple[int, int]], rows: int, kind: str, scale: int, repeats: int) -> dict[str, float]:
    """(MKL ms, oneDNN ms) for `kind` (forward, input_grad, weight_grad) over `shapes`, times `scale`."""
    gen = torch.Generator().manual_seed(0)
    ws = [torch.randn(n, k, generator=gen) for n, k in shapes]
    xs = [torch.randn(rows, k, generator=gen) for _, k in shapes]
    gs = [torch.randn(rows, n, generator=gen) for n, _ in shapes]
    plain, fast = {
        "forward": (lambda: [torch.nn.functional.linear(x, w) for x, w in zip(xs, ws)],
                    lambda: [linear(x, w, None) for x, w in zip(xs, ws)]),
        "input_grad": (lambda: [g @ w for g, w in zip(gs, ws)],
                       lambda: [linear(g, w.t(), None) for g, w in zip(gs, ws)]),
        "weight_grad": (lambda: [g.t() @ x for g, x in zip(gs, xs)],
                        lambda: [linear(g.t(), x.t(), None) for g, x in zip(gs, xs)]),
    }[kind]
    return {"mkl_ms": best_ms(plain, repeats) * scale, "onednn_ms": best_ms(fast, repeats) * scale}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not onednn_available():
        raise SystemExit("this torch build has no oneDNN linear on this CPU: nothing to compare")
    vendor, flags = cpu_info()
    print(f"{vendor or 'unknown CPU'}, AVX-512 {'yes' if 'avx512f' in flags else 'no'}, {torch.get_num_threads()} "
          f"torch threads, {os.cpu_count()} cores: --onednn auto {'engages' if auto_engages() else 'stays off'}")
    cases = [(f"{LAYERS} layers, forward, {m} rows", LAYER, m, "forward", LAYERS) for m in (4, 16, 64, 340)]
    cases += [(f"{LAYERS} layers, {kind.replace('_', ' ')}, 340 rows", LAYER, 340, kind, LAYERS)
              for kind in ("input_grad", "weight_grad")]
    cases += [(f"LM head, forward, {m} rows", [HEAD], m, "forward", 1) for m in (16, 340)]
    results = {}
    for name, shapes, rows, kind, scale in cases:
        r = results[name] = case(shapes, rows, kind, scale, args.repeats)
        print(f"  {name:36s} MKL {r['mkl_ms']:8.1f} ms  oneDNN {r['onednn_ms']:8.1f} ms  "
              f"({r['mkl_ms'] / r['onednn_ms']:.2f}x)")
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "cpu_matmul", "vendor": vendor, "avx512f": "avx512f" in flags,
                                         "auto_engages": auto_engages(), "torch": torch.__version__,
                                         "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
