"""Each metric against hand-computed values on tiny masks, empty cases included."""

import numpy as np
import pytest

from defectseg.metrics import (
    Counts,
    detection_precision_recall,
    dice,
    false_alarm_rate,
    global_iou,
    iou_by_threshold,
    mean_defect_image_iou,
    per_class_iou,
    per_image_iou,
    pixel_precision,
    pixel_recall,
    pr_curve,
    two_class_miou,
)


def masks(*rows):
    return np.array([[list(r)] for r in rows], dtype=bool)


# image 0: truth 1100, prediction 1010 -> tp 1, fp 1, fn 1, tn 1
# image 1: truth 0000, prediction 0000 -> both empty
# image 2: truth 0000, prediction 0100 -> false alarm: fp 1, tn 3
# image 3: truth 0011, prediction 0000 -> empty prediction: fn 2, tn 2
TRUTH = masks([1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1])
PREDICTED = masks([1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0])
COUNTS = Counts.of(PREDICTED, TRUTH)


def test_counts_per_image():
    assert COUNTS.tp.tolist() == [1, 0, 0, 0]
    assert COUNTS.fp.tolist() == [1, 0, 1, 0]
    assert COUNTS.fn.tolist() == [1, 0, 0, 2]
    assert COUNTS.tn.tolist() == [1, 4, 3, 2]


def test_global_iou_sums_before_dividing():
    assert global_iou(COUNTS) == pytest.approx(1 / (1 + 2 + 3))


def test_per_image_iou_handles_both_empty_and_one_empty():
    assert per_image_iou(COUNTS).tolist() == pytest.approx([1 / 3, 1.0, 0.0, 0.0])


def test_mean_image_iou_averages_only_images_with_defects():
    assert mean_defect_image_iou(COUNTS) == pytest.approx((1 / 3 + 0.0) / 2)


def test_false_alarm_rate_over_defect_free_images():
    assert false_alarm_rate(COUNTS) == pytest.approx(1 / 2)


def test_detection_precision_and_recall():
    # predicted "has defect": images 0, 2; truly defective: 0, 3 -> 1 hit
    assert detection_precision_recall(COUNTS) == pytest.approx((1 / 2, 1 / 2))


def test_dice_and_pixel_precision_recall():
    assert dice(COUNTS) == pytest.approx(2 * 1 / (2 * 1 + 2 + 3))
    assert pixel_precision(COUNTS) == pytest.approx(1 / 3)
    assert pixel_recall(COUNTS) == pytest.approx(1 / 4)


def test_two_class_miou_averages_background_and_defect():
    background = 10 / (10 + 3 + 2)  # tn summed, with fn and fp swapped roles
    assert two_class_miou(COUNTS) == pytest.approx((1 / 6 + background) / 2)


def test_everything_empty_is_perfect_and_absent_groups_are_none():
    empty = Counts.of(masks([0, 0]), masks([0, 0]))
    assert global_iou(empty) == 1.0 and dice(empty) == 1.0
    assert pixel_precision(empty) == 1.0 and pixel_recall(empty) == 1.0
    assert mean_defect_image_iou(empty) is None
    assert false_alarm_rate(empty) == 0.0
    assert false_alarm_rate(Counts.of(masks([1, 0]), masks([1, 0]))) is None


def test_empty_prediction_on_defects_scores_zero():
    counts = Counts.of(masks([0, 0]), masks([1, 1]))
    assert global_iou(counts) == 0.0 and dice(counts) == 0.0 and pixel_recall(counts) == 0.0
    assert pixel_precision(counts) == 1.0


def test_per_class_iou_leaves_out_defect_free_classes():
    classes = np.array(["crack", "free", "free", "blowhole"])
    assert per_class_iou(COUNTS, classes) == pytest.approx({"crack": 1 / 3, "blowhole": 0.0})


def test_average_precision_of_a_perfect_ranking_is_one():
    probabilities = np.array([0.9, 0.8, 0.2, 0.1])
    truth = np.array([1, 1, 0, 0])
    assert pr_curve(probabilities, truth)[2] == pytest.approx(1.0)


def test_average_precision_hand_value():
    # ranking: pos (0.9), neg (0.7), pos (0.4) -> precision 1 at recall .5, 2/3 at recall 1
    probabilities = np.array([0.9, 0.7, 0.4])
    truth = np.array([1, 0, 1])
    assert pr_curve(probabilities, truth)[2] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_iou_by_threshold_matches_thresholding_each_time():
    rng = np.random.default_rng(0)
    probabilities = rng.random((3, 8, 8)).round(2)
    truth = rng.random((3, 8, 8)) > 0.7
    thresholds, ious = iou_by_threshold(probabilities, truth, steps=19)
    for t, iou in zip(thresholds, ious):
        assert iou == pytest.approx(global_iou(Counts.of(probabilities > t, truth)))
    assert iou_by_threshold(np.zeros((1, 2, 2)), np.zeros((1, 2, 2), bool), 9)[1].tolist() == [1.0] * 9
