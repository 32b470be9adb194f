"""pass@k and the bootstrap interval."""
import numpy as np
import pytest

from alignkit.eval.quality import pass_at_k
from alignkit.eval.stats import bootstrap_mean


def test_pass_at_k_hand_computed():
    """n=4, c=1: pass@1 = 1 - C(3,1)/C(4,1) = 1/4; pass@2 = 1 - C(3,2)/C(4,2) = 1 - 3/6 = 1/2;
    pass@4 = 1 - C(3,4)/C(4,4) = 1 (C(3,4) = 0). c=0 -> 0 for every k."""
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    assert pass_at_k(4, 1, 4) == pytest.approx(1.0)
    assert pass_at_k(4, 0, 4) == 0.0
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


def test_bootstrap_interval_contains_mean_and_is_deterministic():
    values = [0.1, 0.9, 0.4, 0.5, 0.7, 0.2, 0.3, 0.8]
    a = bootstrap_mean(values, resamples=500, seed=3)
    b = bootstrap_mean(values, resamples=500, seed=3)
    c = bootstrap_mean(values, resamples=500, seed=4)
    assert a == b
    assert a.mean == pytest.approx(np.mean(values))
    assert a.ci_low < a.mean < a.ci_high
    assert (c.ci_low, c.ci_high) != (a.ci_low, a.ci_high)
    # The interval of the mean of 8 values in [0.1, 0.9] with sd ~0.28 is roughly mean +- 2 * 0.28/sqrt(8).
    assert 0.1 < a.ci_high - a.ci_low < 0.5
    assert a.n_prompts == 8


def test_bootstrap_of_constant_or_single_value_collapses():
    assert bootstrap_mean([0.5, 0.5, 0.5], 100, 0).as_dict() == {"mean": 0.5, "ci_low": 0.5, "ci_high": 0.5,
                                                                 "n_prompts": 3}
    assert bootstrap_mean([2.0], 100, 0).ci_low == 2.0
