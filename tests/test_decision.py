"""The decision: the image gate, the threshold, then regions under a share of the image area are dropped."""

import numpy as np
import pytest

from defectseg.measures.decision import Decision, allowed_false_alarms, drop_small_regions, false_alarm_upper_bound, gate_for_false_alarms, image_score


def test_small_regions_are_dropped_and_large_ones_kept_whole():
    mask = np.zeros((10, 10), dtype=bool)
    mask[0, 0] = True
    mask[5:8, 5:8] = True
    kept = drop_small_regions(mask, min_pixels=4)
    assert not kept[0, 0]
    assert kept[5:8, 5:8].all() and kept.sum() == 9


def test_diagonal_neighbours_form_one_region():
    mask = np.eye(4, dtype=bool)
    assert drop_small_regions(mask, min_pixels=4).sum() == 4


def test_decision_without_region_filter_is_a_plain_threshold():
    probabilities = np.array([[0.2, 0.6], [0.7, 0.4]])
    assert (Decision(0.5).apply(probabilities) == (probabilities > 0.5)).all()


def test_region_share_scales_with_each_image_area():
    small, large = np.zeros((20, 20)), np.zeros((40, 40))
    small[:2, :2] = 0.9
    large[:2, :2] = 0.9
    decision = Decision(0.5, min_region_share=3 / 400)
    assert decision.apply(small).sum() == 4
    assert decision.apply(large).sum() == 0


def test_an_image_scoring_at_most_the_gate_gets_an_empty_mask():
    probabilities = np.array([[0.2, 0.6], [0.7, 0.4]])
    assert image_score(probabilities) == 0.7
    assert Decision(0.5, image_threshold=0.7).apply(probabilities).sum() == 0
    assert (Decision(0.5, image_threshold=0.69).apply(probabilities) == (probabilities > 0.5)).all()


def test_gate_lets_through_at_most_the_allowed_share_of_free_images():
    free_scores = np.array([0.1, 0.9, 0.3, 0.8, 0.2, 0.4, 0.5, 0.6, 0.7, 0.05])
    gate = gate_for_false_alarms(free_scores, 0.2)
    assert gate == 0.7
    assert (free_scores > gate).sum() == 2
    assert gate_for_false_alarms(free_scores, 0.05) == 0.9
    assert gate_for_false_alarms(free_scores, 1.0) == 0.0
    assert gate_for_false_alarms(np.array([]), 0.05) == 0.0


def test_top_share_score_averages_the_highest_pixels_so_one_noisy_pixel_cannot_raise_it():
    speck = np.zeros((20, 20))
    speck[3, 4] = 0.99
    blob = np.zeros((20, 20))
    blob[5:9, 5:9] = 0.6
    assert image_score(speck) > image_score(blob)
    assert image_score(speck, 0.01) == pytest.approx(0.99 / 4)  # 1% of 400 pixels: the top 4
    assert image_score(blob, 0.01) == pytest.approx(0.6)
    assert image_score(blob, 0.0001) == image_score(blob) == pytest.approx(0.6)  # at least one pixel


def test_the_gate_uses_the_decisions_score():
    speck = np.zeros((20, 20))
    speck[3, 4] = 0.99
    assert Decision(0.5, image_threshold=0.3).apply(speck).sum() == 1
    assert Decision(0.5, image_threshold=0.3, score_top_share=0.01).apply(speck).sum() == 0


def test_a_gate_with_confidence_keeps_the_false_alarm_rates_upper_bound_within_the_budget():
    scores = np.linspace(0.0, 1.0, 115)
    point = gate_for_false_alarms(scores, 0.05)
    assert (scores > point).sum() == 5
    for confidence in (0.8, 0.95):
        gate = gate_for_false_alarms(scores, 0.05, confidence)
        flagged = int((scores > gate).sum())
        assert false_alarm_upper_bound(flagged, 115, confidence) <= 0.05 < false_alarm_upper_bound(flagged + 1, 115, confidence)
    assert (scores > gate_for_false_alarms(scores, 0.05, 0.95)).sum() == 1


def test_a_budget_too_tight_for_the_sample_flags_none_of_it():
    scores = np.linspace(0.0, 1.0, 20)
    assert allowed_false_alarms(20, 0.05, 0.9) == -1
    assert (scores > gate_for_false_alarms(scores, 0.05, 0.9)).sum() == 0


def test_the_gate_bound_counts_groups_so_six_photographs_of_a_tile_do_not_buy_a_looser_gate():
    scores = np.linspace(0.0, 1.0, 120)
    by_image = gate_for_false_alarms(scores, 0.05, 0.9)
    by_group = gate_for_false_alarms(scores, 0.05, 0.9, groups=20)
    assert by_image < by_group == scores.max(), "20 tiles cannot bound 5% at 90%: no val false alarm is allowed"
    assert gate_for_false_alarms(scores, 0.05, 0.9, groups=120) == by_image
    assert gate_for_false_alarms(scores, 0.05, 0.0, groups=20) == gate_for_false_alarms(scores, 0.05, 0.0), "the point rate does not depend on the groups"
