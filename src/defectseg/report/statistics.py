"""Uncertainty of the comparison: bootstraps over groups (one physical object each).

One object photographed six times gives six nearly identical draws, not six independent
ones, so the bootstraps resample groups with replacement (a cluster bootstrap) and a drawn
group brings all its images; an image counts with every seed's prediction of it, so seeds
never pass for extra images either. Where each image is its own group this is the plain
bootstrap over images.
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
    group: np.ndarray

    def select(self, members: np.ndarray) -> "ImageTotals":
        """The images where ``members`` (a boolean mask over the images) is true."""
        return ImageTotals(self.tp[members], self.fp[members], self.fn[members], self.flagged[members], self.has_defect[members], self.seeds, self.group[members])

    @property
    def groups(self) -> int:
        """How many groups the images come from."""
        return len(np.unique(self.group))


@dataclass(frozen=True)
class GroupTotals:
    """Per group, summed over its images: what a resample draws."""

    tp: np.ndarray
    union: np.ndarray
    flagged_defect: np.ndarray
    flagged_free: np.ndarray
    defect_images: np.ndarray
    free_images: np.ndarray
    seeds: int


def by_group(totals: ImageTotals) -> GroupTotals:
    """The images' totals summed within each group (groups in sorted order)."""
    _, index = np.unique(totals.group, return_inverse=True)

    def summed(values: np.ndarray) -> np.ndarray:
        return np.bincount(index, weights=values.astype(float))

    defect = totals.has_defect.astype(bool)
    return GroupTotals(
        summed(totals.tp),
        summed(totals.tp + totals.fp + totals.fn),
        summed(totals.flagged * defect),
        summed(totals.flagged * ~defect),
        summed(defect),
        summed(~defect),
        totals.seeds,
    )


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float] | tuple[None, None]:
    """The central ``confidence`` share of ``values`` (NaN ones left out); None where all are NaN."""
    if np.isnan(values).all():
        return None, None
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _draws(n: int, samples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(samples, n))


def _iou_of_resamples(groups: GroupTotals, draws: np.ndarray) -> np.ndarray:
    inter = groups.tp[draws].sum(1)
    union = groups.union[draws].sum(1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def pooled_iou(totals: ImageTotals) -> float:
    """Global IoU over all the images, counted once each."""
    union = int((totals.tp + totals.fp + totals.fn).sum())
    return float(totals.tp.sum() / union) if union > 0 else 1.0


def _flag_rate_of_resamples(groups: GroupTotals, draws: np.ndarray, defect: bool) -> np.ndarray:
    """Share of the drawn groups' (defect or defect-free) images' predictions that flag a defect; NaN if none is drawn."""
    images = (groups.defect_images if defect else groups.free_images)[draws].sum(1) * groups.seeds
    flagged = (groups.flagged_defect if defect else groups.flagged_free)[draws].sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(images > 0, flagged / np.maximum(images, 1), np.nan)


def bootstrap_intervals(totals: ImageTotals, samples: int, seed: int, confidence: float) -> dict[str, tuple]:
    """Percentile intervals of global IoU, detection recall and false-alarm rate over resampled
    groups; (None, None) for a rate with no image of its kind."""
    groups = by_group(totals)
    draws = _draws(len(groups.tp), samples, seed)
    return {
        "iou": _percentile_interval(_iou_of_resamples(groups, draws), confidence),
        "recall": _percentile_interval(_flag_rate_of_resamples(groups, draws, defect=True), confidence),
        "false_alarms": _percentile_interval(_flag_rate_of_resamples(groups, draws, defect=False), confidence),
    }


def paired_bootstrap(a: ImageTotals, b: ImageTotals, samples: int, seed: int, confidence: float) -> dict:
    """Compare the global IoU of two arms on the same images by resampling their groups.

    ``a`` and ``b`` hold the same images, of the same groups, in the same order. Each
    resample draws groups with replacement and computes both IoUs on the same draw.
    Returns the observed difference (a - b), its percentile interval, and whether the
    interval excludes zero.
    """
    if len(a.tp) != len(b.tp) or not np.array_equal(a.group, b.group):
        raise ValueError("paired bootstrap needs the same images (in the same groups) for both arms")
    groups_a, groups_b = by_group(a), by_group(b)
    draws = _draws(len(groups_a.tp), samples, seed)
    observed = pooled_iou(a) - pooled_iou(b)
    low, high = _percentile_interval(_iou_of_resamples(groups_a, draws) - _iou_of_resamples(groups_b, draws), confidence)
    return {"difference": observed, "low": low, "high": high, "significant": bool(low > 0 or high < 0)}
