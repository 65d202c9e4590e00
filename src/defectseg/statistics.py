"""Uncertainty of the comparison: intervals over seeds and a paired bootstrap over images."""

import numpy as np
from scipy import stats


def mean_interval(values: list[float], confidence: float) -> tuple[float, float | None]:
    """Mean and half-width of its Student-t interval; no half-width for a single value."""
    array = np.asarray(values, dtype=float)
    if len(array) < 2:
        return float(array.mean()), None
    half = stats.t.ppf((1 + confidence) / 2, len(array) - 1) * array.std(ddof=1) / np.sqrt(len(array))
    return float(array.mean()), float(half)


def _iou_of_resamples(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, draws: np.ndarray) -> np.ndarray:
    inter = tp[draws].sum(1)
    union = (tp + fp + fn)[draws].sum(1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def paired_bootstrap(a: dict[str, np.ndarray], b: dict[str, np.ndarray], samples: int, seed: int, confidence: float) -> dict:
    """Compare global IoU of two models on the same images by resampling the images.

    ``a`` and ``b`` hold per-image ``tp``, ``fp``, ``fn`` in the same image order. Each
    resample draws images with replacement and computes both IoUs on the same draw.
    Returns the observed difference (a - b), its percentile interval, and whether the
    interval excludes zero.
    """
    n = len(a["tp"])
    if n != len(b["tp"]):
        raise ValueError("paired bootstrap needs the same images for both models")
    draws = np.random.default_rng(seed).integers(0, n, size=(samples, n))
    diffs = _iou_of_resamples(a["tp"], a["fp"], a["fn"], draws) - _iou_of_resamples(b["tp"], b["fp"], b["fn"], draws)
    every = np.arange(n)[None, :]
    observed = float((_iou_of_resamples(a["tp"], a["fp"], a["fn"], every) - _iou_of_resamples(b["tp"], b["fp"], b["fn"], every))[0])
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return {"difference": observed, "low": float(low), "high": float(high), "significant": bool(low > 0 or high < 0)}


def bootstrap_interval(counts: dict[str, np.ndarray], samples: int, seed: int, confidence: float) -> tuple[float, float]:
    """Percentile interval of global IoU over images resampled with replacement."""
    n = len(counts["tp"])
    draws = np.random.default_rng(seed).integers(0, n, size=(samples, n))
    ious = _iou_of_resamples(counts["tp"], counts["fp"], counts["fn"], draws)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(ious, [tail, 100 - tail])
    return float(low), float(high)
