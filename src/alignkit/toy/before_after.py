"""Exact toy-world figures of a policy before and after training, printed as two rows and kept as exact.json.

The toy plugin's lifecycle hooks (alignkit.toy.plugin) run this when a run trains a toy model (its folder's
alignkit-model.json says `"world": "toy"`, so a trained toy model passed by path counts too): the 880 responses
of every prompt are enumerated (alignkit.toy.exact), so the change in expected reward, entropy, expected length
and the KL from the starting policy are exact, not estimates. It costs about a second on each side.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

KEYS = (("expected_reward", "E[r]"), ("entropy", "entropy (nats)"), ("expected_length", "length (words)"),
        ("kl", "KL to start"), ("outside_mass", "outside mass"))


class ExactBeforeAfter:
    def __init__(self, policy: Any, tokenizer: Any) -> None:
        from alignkit.toy.exact import exact_evaluate

        self.tokenizer = tokenizer
        # The starting policy is kept for the KL: a toy model is 85k parameters, a copy costs nothing.
        self.start = copy.deepcopy(policy).eval()
        self.before = {**exact_evaluate(self.start, tokenizer)["mean"], "kl": 0.0}  # KL of the start to itself

    def after(self, policy: Any, output: Path) -> dict[str, Any]:
        from alignkit.toy.exact import exact_evaluate

        was_training = policy.training
        policy.eval()
        after = exact_evaluate(policy, self.tokenizer, ref_model=self.start)["mean"]
        policy.train(was_training)
        figures = {"before": self.before, "after": after}
        (Path(output) / "exact.json").write_text(json.dumps(figures, indent=2) + "\n")
        print(f"toy world, exact over all responses ({Path(output) / 'exact.json'}):")
        print("  " + " " * 8 + "".join(f"{label:>16s}" for _, label in KEYS))
        for row, values in (("before", self.before), ("after", after)):
            print(f"  {row:8s}" + "".join(f"{values[key]:16.3f}" for key, _ in KEYS))
        return figures
