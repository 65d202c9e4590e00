"""Intervals over seeds and the paired bootstrap."""

import numpy as np
import pytest

from defectseg.statistics import bootstrap_interval, mean_interval, paired_bootstrap


def counts(tp, fp, fn):
    return {"tp": np.array(tp), "fp": np.array(fp), "fn": np.array(fn)}


def test_mean_interval_matches_t_table():
    mean, half = mean_interval([1.0, 2.0, 3.0], 0.95)
    assert mean == 2.0 and half == pytest.approx(4.303 * 1.0 / np.sqrt(3), rel=1e-3)
    assert mean_interval([0.5], 0.95) == (0.5, None)


def test_bootstrap_is_repeatable_for_the_same_seed():
    rng = np.random.default_rng(1)
    a = counts(rng.integers(0, 50, 30), rng.integers(0, 20, 30), rng.integers(0, 20, 30))
    b = counts(rng.integers(0, 50, 30), rng.integers(0, 20, 30), rng.integers(0, 20, 30))
    assert paired_bootstrap(a, b, 500, 7, 0.95) == paired_bootstrap(a, b, 500, 7, 0.95)
    assert paired_bootstrap(a, b, 500, 7, 0.95) != paired_bootstrap(a, b, 500, 8, 0.95)


def test_clearly_better_model_is_significant_and_equal_models_are_not():
    better = counts([9] * 40, [1] * 40, [1] * 40)
    worse = counts([5] * 40, [5] * 40, [5] * 40)
    outcome = paired_bootstrap(better, worse, 1000, 0, 0.95)
    assert outcome["difference"] == pytest.approx(9 / 11 - 5 / 15)
    assert outcome["significant"] and outcome["low"] > 0
    same = paired_bootstrap(better, better, 1000, 0, 0.95)
    assert same == {"difference": 0.0, "low": 0.0, "high": 0.0, "significant": False}


def test_bootstrap_refuses_unpaired_inputs():
    with pytest.raises(ValueError, match="same images"):
        paired_bootstrap(counts([1], [0], [0]), counts([1, 2], [0, 0], [0, 0]), 100, 0, 0.95)


def test_bootstrap_interval_brackets_the_observed_iou_and_repeats():
    rng = np.random.default_rng(2)
    data = counts(rng.integers(0, 50, 40), rng.integers(0, 20, 40), rng.integers(0, 20, 40))
    low, high = bootstrap_interval(data, 1000, 0, 0.95)
    observed = data["tp"].sum() / (data["tp"] + data["fp"] + data["fn"]).sum()
    assert low < observed < high
    assert (low, high) == bootstrap_interval(data, 1000, 0, 0.95)
