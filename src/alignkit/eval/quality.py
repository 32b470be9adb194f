"""Quality measures over one prompt's samples' rewards."""
from __future__ import annotations

from math import comb


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021, arXiv:2107.03374v2): 1 − C(n−c, k) / C(n, k).

    The chance that at least one of k samples drawn without replacement from n, c of them correct, is correct.
    """
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    return 1.0 - comb(n - c, k) / comb(n, k)
