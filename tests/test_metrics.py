"""Each metric against hand-computed values on tiny masks, empty cases included."""

import numpy as np
import pytest

from defectseg.measures.metrics import (
    Counts,
    detection_precision_recall,
    dice,
    false_alarm_rate,
    global_iou,
    image_auroc,
    iou_by_threshold,
    mean_defect_image_iou,
    per_class_iou,
    per_class_mean_image_iou,
    per_class_recall,
    per_image_iou,
    pixel_precision,
    pixel_recall,
    pr_curve,
    recall_at_false_alarm_rate,
    split_metrics,
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


def test_counts_of_images_of_different_sizes_are_taken_each_at_its_own_size():
    small_truth = np.zeros((4, 6), bool)
    small_truth[1:3, 1:3] = True
    small_guess = np.zeros((4, 6), bool)
    small_guess[1:3, 2:4] = True
    large_truth = np.zeros((10, 3), bool)
    large_truth[:5] = True
    large_guess = np.zeros((10, 3), bool)
    large_guess[:4] = True
    counts = Counts.of([small_guess, large_guess], [small_truth, large_truth])
    assert counts.tp.tolist() == [2, 12] and counts.fp.tolist() == [2, 0]
    assert counts.fn.tolist() == [2, 3] and counts.tn.tolist() == [18, 15]
    assert global_iou(counts) == pytest.approx(14 / (14 + 2 + 5))
    assert mean_defect_image_iou(counts) == pytest.approx((2 / 6 + 12 / 15) / 2)


def test_counts_refuse_a_prediction_of_another_size_than_its_truth():
    with pytest.raises(ValueError, match="differ in size"):
        Counts.of([np.zeros((4, 4), bool)], [np.zeros((4, 5), bool)])


def test_per_class_mean_image_iou_weighs_every_image_alike():
    truth = [np.ones((2, 2), bool), np.ones((10, 10), bool), np.zeros((3, 3), bool)]
    guess = [np.ones((2, 2), bool), np.zeros((10, 10), bool), np.zeros((3, 3), bool)]
    counts = Counts.of(guess, truth)
    classes = np.array(["blowhole", "blowhole", "free"])
    assert per_class_mean_image_iou(counts, classes) == {"blowhole": 0.5}
    assert per_class_iou(counts, classes) == {"blowhole": pytest.approx(4 / 104)}


def test_image_auroc_counts_correctly_ordered_pairs():
    scores = np.array([0.9, 0.4, 0.7, 0.2, 0.5])
    has_defect = np.array([True, True, False, False, False])
    # defect-vs-free pairs ordered right: 0.9 beats all 3, 0.4 beats only 0.2 -> 4 of 6
    assert image_auroc(scores, has_defect) == pytest.approx(4 / 6)
    assert image_auroc(scores, np.ones(5, bool)) is None


@pytest.mark.parametrize("seed", range(6))
def test_ranking_metrics_equal_scikit_learns_with_ties(seed):
    """The numpy AUROC and recall at a false-alarm rate give what scikit-learn's roc_auc_score
    and roc_curve give, on scores with many ties (rounded) and without."""
    from sklearn.metrics import roc_auc_score, roc_curve

    rng = np.random.default_rng(seed)
    has_defect = rng.random(200) < 0.3
    scores = rng.random(200) + 0.4 * has_defect
    if seed % 2:
        scores = np.round(scores, 1)
    assert image_auroc(scores, has_defect) == pytest.approx(roc_auc_score(has_defect, scores), abs=1e-12)
    false_alarms, recall, _ = roc_curve(has_defect, scores, drop_intermediate=False)
    for rate in (0.0, 0.01, 0.05, 0.2, 1.0):
        assert recall_at_false_alarm_rate(scores, has_defect, rate) == pytest.approx(float(recall[false_alarms <= rate + 1e-12].max()), abs=1e-12)


def test_recall_at_false_alarm_rate_reads_the_roc_at_that_rate():
    scores = np.array([0.95, 0.9, 0.8, 0.3, 0.85, 0.5, 0.4, 0.2, 0.1, 0.05, 0.01, 0.0])
    has_defect = np.array([True, True, True, True] + [False] * 8)
    # no false alarm: threshold above 0.85 finds 2 of 4; one of 8 free (12.5%) allowed: 3 of 4
    assert recall_at_false_alarm_rate(scores, has_defect, 0.05) == pytest.approx(0.5)
    assert recall_at_false_alarm_rate(scores, has_defect, 0.125) == pytest.approx(0.75)
    assert recall_at_false_alarm_rate(scores, has_defect, 1.0) == pytest.approx(1.0)
    assert recall_at_false_alarm_rate(scores, np.zeros(12, bool), 0.05) is None


def test_split_metrics_hold_image_level_measures():
    truth = [np.ones((2, 3), bool), np.zeros((4, 4), bool)]
    probabilities = [np.full((2, 3), 0.8), np.full((4, 4), 0.3)]
    guess = [p > 0.5 for p in probabilities]
    metrics = split_metrics(Counts.of(guess, truth), probabilities, truth, np.array([0.8, 0.3]), 0.05)
    assert metrics["iou"] == 1.0 and metrics["detection_recall"] == 1.0 and metrics["false_alarm_rate"] == 0.0
    assert metrics["image_auroc"] == 1.0 and metrics["recall_at_false_alarm_rate"] == 1.0
    assert metrics["images"] == 2


def test_image_recall_per_class_is_the_share_of_its_defective_images_flagged():
    counts = Counts(tp=np.array([5, 0, 0, 3, 0]), fp=np.array([0, 2, 0, 0, 0]), fn=np.array([1, 4, 6, 0, 0]), tn=np.array([9, 9, 9, 9, 9]))
    classes = np.array(["crack", "crack", "crack", "blowhole", "free"])
    assert per_class_recall(counts, classes) == {"blowhole": 1.0, "crack": pytest.approx(2 / 3)}
