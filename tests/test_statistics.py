"""The bootstraps over groups (each image its own group where none is given)."""

import numpy as np
import pytest

from defectseg.report.statistics import ImageTotals, bootstrap_intervals, paired_bootstrap


def totals(tp, fp, fn, flagged=None, has_defect=None, seeds=1, group=None):
    tp, fp, fn = np.array(tp), np.array(fp), np.array(fn)
    flagged = np.array(flagged) if flagged is not None else ((tp + fp) > 0).astype(int)
    has_defect = np.array(has_defect) if has_defect is not None else (tp + fn) > 0
    group = np.array(group) if group is not None else np.arange(len(tp)).astype(str)
    return ImageTotals(tp, fp, fn, flagged, has_defect, seeds, group)


def six_photographs_each(arm):
    """Every image of ``arm`` taken six times: six images of one group each."""
    return totals(*(np.repeat(v, 6) for v in (arm.tp, arm.fp, arm.fn, arm.flagged, arm.has_defect)), group=np.repeat(arm.group, 6))


def width(interval):
    return interval[1] - interval[0]


def test_six_photographs_of_each_object_widen_the_group_interval_where_an_image_bootstrap_narrows():
    rng = np.random.default_rng(5)
    arm = totals(rng.integers(0, 60, 40), rng.integers(0, 30, 40), rng.integers(0, 30, 40))
    copies = six_photographs_each(arm)
    as_images = totals(copies.tp, copies.fp, copies.fn, copies.flagged, copies.has_defect)
    alone = bootstrap_intervals(arm, 2000, 0, 0.95)["iou"]
    by_group = bootstrap_intervals(copies, 2000, 0, 0.95)["iou"]
    by_image = bootstrap_intervals(as_images, 2000, 0, 0.95)["iou"]
    assert width(by_image) < 0.6 * width(alone), "resampling the copies as independent images narrows the interval"
    assert width(by_group) > 0.8 * width(alone) and width(by_group) > 1.5 * width(by_image)


def test_a_paired_verdict_on_copied_photographs_is_not_made_surer_by_the_copies():
    rng = np.random.default_rng(6)
    a = totals(rng.integers(20, 60, 30), rng.integers(0, 30, 30), rng.integers(0, 30, 30))
    b = totals(a.tp - rng.integers(0, 6, 30), a.fp, a.fn + rng.integers(0, 6, 30))
    a6, b6 = six_photographs_each(a), six_photographs_each(b)
    grouped = paired_bootstrap(a6, b6, 2000, 0, 0.95)
    as_images = paired_bootstrap(*(totals(t.tp, t.fp, t.fn, t.flagged, t.has_defect) for t in (a6, b6)), 2000, 0, 0.95)
    assert grouped["difference"] == pytest.approx(as_images["difference"])
    assert grouped["high"] - grouped["low"] > 1.5 * (as_images["high"] - as_images["low"])


def test_paired_bootstrap_refuses_arms_whose_images_sit_in_other_groups():
    a = totals([1, 2, 3], [0, 0, 0], [0, 0, 0], group=["x", "x", "y"])
    b = totals([1, 2, 3], [0, 0, 0], [0, 0, 0], group=["x", "y", "y"])
    with pytest.raises(ValueError, match="in the same groups"):
        paired_bootstrap(a, b, 100, 0, 0.95)


def test_bootstrap_is_repeatable_for_the_same_seed():
    rng = np.random.default_rng(1)
    a = totals(rng.integers(0, 50, 30), rng.integers(0, 20, 30), rng.integers(0, 20, 30))
    b = totals(rng.integers(0, 50, 30), rng.integers(0, 20, 30), rng.integers(0, 20, 30))
    assert paired_bootstrap(a, b, 500, 7, 0.95) == paired_bootstrap(a, b, 500, 7, 0.95)
    assert paired_bootstrap(a, b, 500, 7, 0.95) != paired_bootstrap(a, b, 500, 8, 0.95)


def test_clearly_better_model_is_significant_and_equal_models_are_not():
    better = totals([9] * 40, [1] * 40, [1] * 40)
    worse = totals([5] * 40, [5] * 40, [5] * 40)
    outcome = paired_bootstrap(better, worse, 1000, 0, 0.95)
    assert outcome["difference"] == pytest.approx(9 / 11 - 5 / 15)
    assert outcome["significant"] and outcome["low"] > 0
    same = paired_bootstrap(better, better, 1000, 0, 0.95)
    assert same == {"difference": 0.0, "low": 0.0, "high": 0.0, "significant": False}


def test_bootstrap_refuses_unpaired_inputs():
    with pytest.raises(ValueError, match="same images"):
        paired_bootstrap(totals([1], [0], [0]), totals([1, 2], [0, 0], [0, 0]), 100, 0, 0.95)


def test_bootstrap_intervals_bracket_the_observed_figures_and_repeat():
    rng = np.random.default_rng(2)
    n = 60
    has_defect = np.arange(n) % 2 == 0
    tp = np.where(has_defect & (rng.random(n) < 0.7), rng.integers(1, 50, n), 0)
    fn = np.where(has_defect, rng.integers(1, 20, n), 0)
    fp = rng.integers(0, 20, n) * (rng.random(n) < 0.5)
    data = totals(tp, fp, fn)
    intervals = bootstrap_intervals(data, 1000, 0, 0.95)
    observed = {
        "iou": tp.sum() / (tp + fp + fn).sum(),
        "recall": data.flagged[has_defect].mean(),
        "false_alarms": data.flagged[~has_defect].mean(),
    }
    for name, value in observed.items():
        low, high = intervals[name]
        assert low < value < high, name
    assert intervals == bootstrap_intervals(data, 1000, 0, 0.95)


def test_rates_count_every_seed_of_an_image_together():
    two_seeds = totals([4, 0], [0, 3], [0, 0], flagged=[1, 2], has_defect=[True, False], seeds=2)
    intervals = bootstrap_intervals(two_seeds, 500, 0, 0.95)
    assert intervals["recall"] == (0.5, 0.5) and intervals["false_alarms"] == (1.0, 1.0)


def test_a_rate_with_no_image_of_its_kind_has_no_interval():
    defects_only = totals([4, 2], [0, 0], [1, 1])
    assert bootstrap_intervals(defects_only, 200, 0, 0.95)["false_alarms"] == (None, None)
