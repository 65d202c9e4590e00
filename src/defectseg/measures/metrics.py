"""Segmentation and image-level metrics.

Pixel metrics start from the per-image true/false positive/negative pixel counts, so
each is a small function of those counts with an explicit reduction: "global" sums
counts over the whole split before dividing, "per image" divides per image and then
averages. Images may differ in size (evaluate counts each at its own size). Image-level
metrics rank images by a per-image score against "has a defect": the area under the ROC curve
(the Mann-Whitney rank statistic, ties at half) and the recall at a false-alarm rate, a few lines
of numpy rather than scikit-learn's ``roc_auc_score`` and ``roc_curve``, whose import cost each
evaluate and report process more than a second (``tests/test_metrics.py`` holds them to scikit-learn's).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Counts:
    """Per-image pixel counts (arrays of shape (N,)) at one threshold."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray

    @classmethod
    def of(cls, predicted: Sequence[np.ndarray], truth: Sequence[np.ndarray]) -> "Counts":
        """Counts from boolean predictions and truths, one (H, W) pair per image (sizes may differ)."""
        if len(predicted) != len(truth):
            raise ValueError(f"{len(predicted)} predictions for {len(truth)} truths")
        rows = []
        for guess, actual in zip(predicted, truth):
            if guess.shape != actual.shape:
                raise ValueError(f"prediction {guess.shape} and truth {actual.shape} differ in size")
            guess, actual = guess.astype(bool), actual.astype(bool)
            rows.append(((guess & actual).sum(), (guess & ~actual).sum(), (~guess & actual).sum(), (~guess & ~actual).sum()))
        tp, fp, fn, tn = np.array(rows, dtype=np.int64).reshape(-1, 4).T
        return cls(tp=tp, fp=fp, fn=fn, tn=tn)

    @property
    def has_defect(self) -> np.ndarray:
        """Which images have defect pixels in their truth."""
        return (self.tp + self.fn) > 0

    def astuple(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.tp, self.fp, self.fn, self.tn

    def select(self, index: np.ndarray) -> "Counts":
        """The counts of a subset of images (boolean or integer index)."""
        return Counts(*(a[index] for a in self.astuple()))


def _ratio(numerator: float, denominator: float, empty: float) -> float:
    return float(numerator / denominator) if denominator > 0 else empty


def global_iou(counts: Counts) -> float:
    """Defect IoU with intersection and union summed over all images; 1.0 when both are empty."""
    tp, fp, fn = counts.tp.sum(), counts.fp.sum(), counts.fn.sum()
    return _ratio(tp, tp + fp + fn, empty=1.0)


def per_image_iou(counts: Counts) -> np.ndarray:
    """IoU of each image; 1.0 where truth and prediction are both empty."""
    union = counts.tp + counts.fp + counts.fn
    return np.where(union > 0, counts.tp / np.maximum(union, 1), 1.0)


def mean_defect_image_iou(counts: Counts) -> float | None:
    """Mean per-image IoU over the images whose truth has defect pixels; None if there are none."""
    has_defect = counts.has_defect
    return float(per_image_iou(counts)[has_defect].mean()) if has_defect.any() else None


def false_alarm_rate(counts: Counts) -> float | None:
    """Share of defect-free images with any predicted defect pixel; None if there are none."""
    free = ~counts.has_defect
    return float((counts.fp[free] > 0).mean()) if free.any() else None


def detection_precision_recall(counts: Counts) -> tuple[float, float]:
    """Image-level precision and recall of "has a defect" (any predicted / any true pixel)."""
    predicted = (counts.tp + counts.fp) > 0
    actual = counts.has_defect
    hits = (predicted & actual).sum()
    return _ratio(hits, predicted.sum(), empty=1.0), _ratio(hits, actual.sum(), empty=1.0)


def pixel_precision(counts: Counts) -> float:
    """Share of predicted defect pixels that are defect; 1.0 when nothing is predicted."""
    tp, fp = counts.tp.sum(), counts.fp.sum()
    return _ratio(tp, tp + fp, empty=1.0)


def pixel_recall(counts: Counts) -> float:
    """Share of defect pixels that are predicted; 1.0 when there are none."""
    tp, fn = counts.tp.sum(), counts.fn.sum()
    return _ratio(tp, tp + fn, empty=1.0)


def dice(counts: Counts) -> float:
    """Global Dice (pixel F1) of the defect class; 1.0 when truth and prediction are empty."""
    tp, fp, fn = counts.tp.sum(), counts.fp.sum(), counts.fn.sum()
    return _ratio(2 * tp, 2 * tp + fp + fn, empty=1.0)


def two_class_miou(counts: Counts) -> float:
    """Mean of the global background IoU and defect IoU (2-class mIoU)."""
    background = Counts(tp=counts.tn, fp=counts.fn, fn=counts.fp, tn=counts.tp)
    return (global_iou(counts) + global_iou(background)) / 2


def pr_curve(probabilities: np.ndarray, truth: np.ndarray, bins: int = 1000) -> tuple[np.ndarray, np.ndarray, float]:
    """Pixel precision-recall curve and average precision, with probabilities binned.

    Pixels are counted into ``bins`` equal probability bins; the curve has one point per
    bin edge (threshold), from high to low. Average precision is the step-wise area
    sum over (recall_n - recall_{n-1}) * precision_n. Returns (precision, recall, AP);
    AP is 1.0 when there are no defect pixels and nothing scores above zero.
    """
    truth = truth.reshape(-1).astype(bool)
    index = np.minimum((probabilities.reshape(-1) * bins).astype(np.int64), bins - 1)
    positives = np.bincount(index[truth], minlength=bins)[::-1].cumsum()
    negatives = np.bincount(index[~truth], minlength=bins)[::-1].cumsum()
    predicted = positives + negatives
    precision = np.where(predicted > 0, positives / np.maximum(predicted, 1), 1.0)
    total = truth.sum()
    if total == 0:
        return precision, np.ones_like(precision, dtype=float), 1.0
    recall = positives / total
    average_precision = float(np.sum(np.diff(recall, prepend=0.0) * precision))
    return precision, recall, average_precision


def iou_by_threshold(probabilities: np.ndarray, truth: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Global defect IoU at each of ``steps`` evenly spaced thresholds in (0, 1), in one pass.

    Pixels are counted into ``steps + 1`` probability bins split at the thresholds, so
    predicting "probability > t" for every t needs only cumulative sums. Returns
    (thresholds, IoUs); the IoU is 1.0 where truth and prediction are both empty.
    """
    thresholds = np.arange(1, steps + 1) / (steps + 1)
    truth = truth.reshape(-1).astype(bool)
    bins = np.searchsorted(thresholds, probabilities.reshape(-1), side="left")
    positives = np.bincount(bins[truth], minlength=steps + 1)
    negatives = np.bincount(bins[~truth], minlength=steps + 1)
    tp = positives[::-1].cumsum()[::-1][1:]
    fp = negatives[::-1].cumsum()[::-1][1:]
    fn = truth.sum() - tp
    union = tp + fp + fn
    return thresholds, np.where(union > 0, tp / np.maximum(union, 1), 1.0)


def _has_both_kinds(has_defect: np.ndarray) -> bool:
    return bool(has_defect.any() and not has_defect.all())


def image_auroc(scores: np.ndarray, has_defect: np.ndarray) -> float | None:
    """Area under the ROC curve of per-image scores for "has a defect": the chance that a defective
    image outscores a defect-free one, a tie counting half; None without both kinds of image."""
    has_defect = np.asarray(has_defect, dtype=bool)
    if not _has_both_kinds(has_defect):
        return None
    _, inverse, counts = np.unique(np.asarray(scores, dtype=float), return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # 1-based, tied scores share their mean rank
    defective, free = int(has_defect.sum()), int((~has_defect).sum())
    return float((ranks[has_defect].sum() - defective * (defective + 1) / 2) / (defective * free))


def recall_at_false_alarm_rate(scores: np.ndarray, has_defect: np.ndarray, rate: float) -> float | None:
    """The highest share of defective images found by any score threshold that flags at most
    ``rate`` of the defect-free images; None without both kinds of image."""
    has_defect = np.asarray(has_defect, dtype=bool)
    if not _has_both_kinds(has_defect):
        return None
    scores = np.asarray(scores, dtype=float)
    defective, free = np.sort(scores[has_defect]), np.sort(scores[~has_defect])
    thresholds = np.unique(scores)  # flag an image when its score is at least the threshold
    recall = (len(defective) - np.searchsorted(defective, thresholds, side="left")) / len(defective)
    false_alarms = (len(free) - np.searchsorted(free, thresholds, side="left")) / len(free)
    return float(recall[false_alarms <= rate + 1e-12].max(initial=0.0))


def flatten(maps: Sequence[np.ndarray]) -> np.ndarray:
    """Every pixel of a list of (H, W) maps of any sizes, as one vector."""
    return np.concatenate([m.reshape(-1) for m in maps]) if len(maps) else np.zeros(0)


def split_metrics(counts: Counts, probabilities: Sequence[np.ndarray], truth: Sequence[np.ndarray], scores: np.ndarray, rate: float) -> dict:
    """Every split-level metric of the README's table; ``rate`` is the false-alarm rate for recall."""
    detection_precision, detection_recall = detection_precision_recall(counts)
    return {
        "iou": global_iou(counts),
        "mean_image_iou": mean_defect_image_iou(counts),
        "false_alarm_rate": false_alarm_rate(counts),
        "detection_precision": detection_precision,
        "detection_recall": detection_recall,
        "image_auroc": image_auroc(scores, counts.has_defect),
        "recall_at_false_alarm_rate": recall_at_false_alarm_rate(scores, counts.has_defect, rate),
        "dice": dice(counts),
        "pixel_precision": pixel_precision(counts),
        "pixel_recall": pixel_recall(counts),
        "pixel_ap": pr_curve(flatten(probabilities), flatten(truth))[2],
        "miou_2class": two_class_miou(counts),
        "images": int(len(counts.tp)),
    }


def per_class_iou(counts: Counts, classes: np.ndarray) -> dict[str, float]:
    """Global defect IoU within each class that has defect pixels (defect-free classes are left out)."""
    result = {}
    for name in sorted(set(classes.tolist())):
        subset = counts.select(classes == name)
        if (subset.tp + subset.fn).sum() > 0:
            result[name] = global_iou(subset)
    return result


def per_class_recall(counts: Counts, classes: np.ndarray) -> dict[str, float]:
    """Image-level recall within each class that has defective images: the share of them with any predicted defect pixel."""
    flagged, has_defect = (counts.tp + counts.fp) > 0, counts.has_defect
    return {name: float(flagged[member].mean()) for name in sorted(set(classes.tolist())) if (member := (classes == name) & has_defect).any()}


def per_class_mean_image_iou(counts: Counts, classes: np.ndarray) -> dict[str, float]:
    """Mean per-image IoU within each class that has defect pixels (small defects count as much as large)."""
    result = {}
    for name in sorted(set(classes.tolist())):
        mean = mean_defect_image_iou(counts.select(classes == name))
        if mean is not None:
            result[name] = mean
    return result
