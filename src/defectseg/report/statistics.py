"""Uncertainty of the comparison: bootstraps over images.

The bootstraps resample images with replacement; an image counts with every seed's
prediction of it, so seeds never pass for extra images.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ImageTotals:
    """Per image, summed over the seeds that predicted it: pixel counts and how many seeds flagged it."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    flagged: np.ndarray
    has_defect: np.ndarray
    seeds: int

    def select(self, members: np.ndarray) -> "ImageTotals":
        """The images where ``members`` (a boolean mask over the images) is true."""
        return ImageTotals(self.tp[members], self.fp[members], self.fn[members], self.flagged[members], self.has_defect[members], self.seeds)


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float] | tuple[None, None]:
    """The central ``confidence`` share of ``values`` (NaN ones left out); None where all are NaN."""
    if np.isnan(values).all():
        return None, None
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _draws(n: int, samples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(samples, n))


def _iou_of_resamples(totals: ImageTotals, draws: np.ndarray) -> np.ndarray:
    inter = totals.tp[draws].sum(1)
    union = (totals.tp + totals.fp + totals.fn)[draws].sum(1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def pooled_iou(totals: ImageTotals) -> float:
    """Global IoU over all the images, counted once each."""
    return float(_iou_of_resamples(totals, np.arange(len(totals.tp))[None, :])[0])


def _flag_rate_of_resamples(totals: ImageTotals, draws: np.ndarray, defect: bool) -> np.ndarray:
    """Share of the drawn (defect or defect-free) images' predictions that flag a defect; NaN if none is drawn."""
    member = totals.has_defect == defect
    images = member[draws].sum(1) * totals.seeds
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(images > 0, (totals.flagged * member)[draws].sum(1) / images, np.nan)


def bootstrap_intervals(totals: ImageTotals, samples: int, seed: int, confidence: float) -> dict[str, tuple]:
    """Percentile intervals of global IoU, detection recall and false-alarm rate over resampled
    images; (None, None) for a rate with no image of its kind."""
    draws = _draws(len(totals.tp), samples, seed)
    return {
        "iou": _percentile_interval(_iou_of_resamples(totals, draws), confidence),
        "recall": _percentile_interval(_flag_rate_of_resamples(totals, draws, defect=True), confidence),
        "false_alarms": _percentile_interval(_flag_rate_of_resamples(totals, draws, defect=False), confidence),
    }


def paired_bootstrap(a: ImageTotals, b: ImageTotals, samples: int, seed: int, confidence: float) -> dict:
    """Compare the global IoU of two arms on the same images by resampling the images.

    ``a`` and ``b`` hold the same images in the same order. Each resample draws images
    with replacement and computes both IoUs on the same draw. Returns the observed
    difference (a - b), its percentile interval, and whether the interval excludes zero.
    """
    n = len(a.tp)
    if n != len(b.tp):
        raise ValueError("paired bootstrap needs the same images for both arms")
    draws = _draws(n, samples, seed)
    observed = pooled_iou(a) - pooled_iou(b)
    low, high = _percentile_interval(_iou_of_resamples(a, draws) - _iou_of_resamples(b, draws), confidence)
    return {"difference": observed, "low": low, "high": high, "significant": bool(low > 0 or high < 0)}
