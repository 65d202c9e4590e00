"""Segmentation metrics from per-image confusion counts.

Everything here starts from the per-image true/false positive/negative pixel counts,
so each metric is a small function of those counts with an explicit reduction:
"global" sums counts over the whole split before dividing, "per image" divides per
image and then averages.
"""

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
    def of(cls, predicted: np.ndarray, truth: np.ndarray) -> "Counts":
        """Counts from boolean (N, H, W) predictions and truths."""
        predicted = predicted.reshape(len(predicted), -1).astype(bool)
        truth = truth.reshape(len(truth), -1).astype(bool)
        return cls(
            tp=(predicted & truth).sum(1),
            fp=(predicted & ~truth).sum(1),
            fn=(~predicted & truth).sum(1),
            tn=(~predicted & ~truth).sum(1),
        )

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
    has_truth = (counts.tp + counts.fn) > 0
    return float(per_image_iou(counts)[has_truth].mean()) if has_truth.any() else None


def false_alarm_rate(counts: Counts) -> float | None:
    """Share of defect-free images with any predicted defect pixel; None if there are none."""
    free = (counts.tp + counts.fn) == 0
    return float((counts.fp[free] > 0).mean()) if free.any() else None


def detection_precision_recall(counts: Counts) -> tuple[float, float]:
    """Image-level precision and recall of "has a defect" (any predicted / any true pixel)."""
    predicted = (counts.tp + counts.fp) > 0
    actual = (counts.tp + counts.fn) > 0
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


def summarize(counts: Counts, probabilities: np.ndarray, truth: np.ndarray) -> dict:
    """Every split-level metric of the README's table."""
    detection_precision, detection_recall = detection_precision_recall(counts)
    return {
        "iou": global_iou(counts),
        "mean_image_iou": mean_defect_image_iou(counts),
        "false_alarm_rate": false_alarm_rate(counts),
        "detection_precision": detection_precision,
        "detection_recall": detection_recall,
        "dice": dice(counts),
        "pixel_precision": pixel_precision(counts),
        "pixel_recall": pixel_recall(counts),
        "pixel_ap": pr_curve(probabilities, truth)[2],
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
