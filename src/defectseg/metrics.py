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

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(*(np.concatenate([a, b]) for a, b in zip(self.astuple(), other.astuple())))

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
