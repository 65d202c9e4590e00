"""The decision: threshold, then regions under a share of the image area are dropped."""

import numpy as np

from defectseg.decision import Decision, drop_small_regions


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


def test_region_share_scales_with_the_image_area_per_image():
    probabilities = np.zeros((2, 20, 20))
    probabilities[0, :2, :2] = 0.9
    probabilities[1, :3, :3] = 0.9
    masks = Decision(0.5, min_region_share=5 / 400).apply(probabilities)
    assert masks.shape == (2, 20, 20)
    assert masks[0].sum() == 0 and masks[1].sum() == 9
