"""Aggregation over prompts: the mean and a percentile bootstrap confidence interval (prompts resampled)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Summary:
    mean: float
    ci_low: float
    ci_high: float
    n_prompts: int

    def as_dict(self) -> dict:
        return {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high, "n_prompts": self.n_prompts}


def bootstrap_mean(values: Sequence[float], resamples: int, seed: int, level: float = 0.95) -> Summary:
    """Mean over prompts, with the [2.5 %, 97.5 %] percentiles of the means of `resamples` resamples of the
    prompts (with replacement). The same seed gives the same interval; 0 resamples gives the mean as both ends."""
    v = np.asarray(values, dtype=float)
    mean = float(v.mean())
    if resamples <= 0 or len(v) < 2:
        return Summary(mean, mean, mean, len(v))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(resamples, len(v)))  # (B, P) prompt indices
    means = v[idx].mean(axis=1)  # (B,)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Summary(mean, float(min(low, mean)), float(max(high, mean)), len(v))
