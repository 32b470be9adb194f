"""Re-measure the toy-world tables of docs/algorithms/{dpo,hdpo,poet}.md and tests/toy/test_toy_training.py.

    .venv/bin/python tests/toy/print_tables.py [--seed 0]     # ~4 minutes on one CPU thread

Every run goes through `alignkit train` exactly as the tests run it (toy:instruct on toy:prefs, 3 epochs, CPU fp32,
one thread) and is evaluated exactly (all 880 responses of each prompt, tests/toy/toy_training.py). Prints one
markdown table with the plain and the in-grammar figures, to copy into those files when the training code changes
what it computes (the tests assert the effects with margins, not these figures).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from toy_training import evaluate, train_and_evaluate  # noqa: E402

B5 = {"beta": 5.0}
LR = {"learning_rate": 1e-3}
# label -> (objective, options, transforms, train overrides): the docs' rows
RUNS = {
    "dpo --beta 5 --learning-rate 1e-3": ("dpo", B5, (), LR),
    "hdpo --beta 5 --alpha 0.8 --learning-rate 1e-3": ("hdpo", {**B5, "alpha": 0.8}, (), LR),
    "hdpo --beta 5 --alpha 1.25 --learning-rate 1e-3": ("hdpo", {**B5, "alpha": 1.25}, (), LR),
    "dpo --poet --beta 5 --learning-rate 1e-3": ("dpo", B5, ("poet",), LR),
    "dpo (defaults: β 0.1, lr 3e-4)": ("dpo", {}, (), {}),
    "hdpo --alpha 0.8 (β 0.1, lr 3e-4)": ("hdpo", {"alpha": 0.8}, (), {}),
    "hdpo --alpha 1.25 (β 0.1, lr 3e-4)": ("hdpo", {"alpha": 1.25}, (), {}),
    "dpo --poet (β 0.1, lr 3e-4)": ("dpo", {}, ("poet",), {}),
}


def row(label: str, r: dict) -> str:
    g = r["in_grammar"]
    kl = r["kl"] if r["kl"] is not None else 0.0
    return (f"| `{label}` | {r['expected_reward']:.3f} | {r['entropy']:.2f} | {r['expected_length']:.2f} | {kl:.2f} | "
            f"{r['outside_mass']:.3f} | {g['expected_reward']:.3f} | {g['entropy']:.2f} | {g['expected_length']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("| run | E[r] | H | length | KL | outside | E[r|Y] | H(·|Y) | length|Y |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(row("toy:instruct (reference)", evaluate("toy:instruct", ref_model="toy:instruct")), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, (objective, options, transforms, overrides)) in enumerate(RUNS.items()):
            run = train_and_evaluate(Path(tmp) / str(i), objective, options, transforms, seed=args.seed, **overrides)
            print(row(label, run), flush=True)


if __name__ == "__main__":
    main()
