"""From a defect probability map to a mask: the image gate, the threshold, then dropping specks.

The probability map is the model's own or, with ``flip_tta``, the mean over the image
and its mirror images (``inference.predict_outputs``). An image whose score (the
mean of its highest ``score_top_share`` of pixel probabilities, 0: the single highest;
or, with ``head_score``, the "has a defect" probability of the model's image head)
is at most ``image_threshold`` is called defect-free and gets an empty mask; in the
others, pixels above ``threshold`` are defect, less regions under ``min_region_share`` of
the image area. Evaluate chooses both thresholds on val
and saves the decision beside the model (``threshold.json``); predict applies the same
``Decision`` at each image's own size, so both agree.
"""

from dataclasses import dataclass

import cv2
import numpy as np


def drop_small_regions(mask: np.ndarray, min_pixels: float) -> np.ndarray:
    """``mask`` (H, W) without its 8-connected regions of fewer than ``min_pixels`` pixels."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_pixels
    keep[0] = False
    return keep[labels]


def image_score(probability: np.ndarray, top_share: float = 0.0) -> float:
    """How likely an image (H, W) holds a defect: the mean of its highest ``top_share`` of
    pixel probabilities (at least one pixel; 0: the single highest). A share of the area
    rather than one pixel, so a single noisy pixel cannot raise it alone."""
    if not probability.size:
        return 0.0
    if top_share == 0.0:
        return float(probability.max())
    count = max(1, round(top_share * probability.size))
    return float(np.partition(probability.reshape(-1), -count)[-count:].mean())


def false_alarm_upper_bound(flagged: int, free: int, confidence: float) -> float:
    """The one-sided Clopper-Pearson upper bound, at ``confidence``, of the false-alarm rate of
    which ``flagged`` of ``free`` defect-free images are a sample (the point rate at confidence 0)."""
    if confidence == 0.0:
        return flagged / free
    if flagged >= free:
        return 1.0
    from scipy.stats import beta  # imported when needed: scipy.stats costs a stage a quarter second

    return float(beta.ppf(confidence, flagged + 1, free - flagged))


def allowed_false_alarms(free: int, max_false_alarm_rate: float, confidence: float) -> int:
    """How many of ``free`` val defect-free images the gate may flag: the most whose rate's upper
    bound (``false_alarm_upper_bound``) stays within ``max_false_alarm_rate``; -1 where even none does."""
    allowed = int(np.floor(max_false_alarm_rate * free + 1e-9))
    while allowed >= 0 and false_alarm_upper_bound(allowed, free, confidence) > max_false_alarm_rate + 1e-12:
        allowed -= 1
    return allowed


def gate_for_false_alarms(free_scores: np.ndarray, max_false_alarm_rate: float, confidence: float = 0.0, groups: int | None = None) -> float:
    """The lowest image threshold above which at most the allowed number of the defect-free
    images score; 0.0 (no gate) when there are none or all may be flagged, and their highest
    score (none flagged) where even 0 is too many.

    At ``confidence`` 0 the allowed share is ``max_false_alarm_rate`` of these images; above
    0 the rate's upper confidence bound must stay within it, so the gate keeps its promise on
    new images too, not only on these (val's ~100 defect-free tiles are a small sample). The
    bound counts ``groups`` trials where given (the images' physical objects: six photographs
    of one tile are not six chances to see a false alarm), and the allowed share of the
    groups is applied to the images (``allowed_false_alarms``).
    """
    if len(free_scores) == 0:
        return 0.0
    trials = len(free_scores) if groups is None else groups
    share = allowed_false_alarms(trials, max_false_alarm_rate, confidence) / trials
    allowed = int(np.floor(share * len(free_scores) + 1e-9)) if share >= 0 else -1
    if allowed >= len(free_scores):
        return 0.0
    return float(np.sort(free_scores)[::-1][max(allowed, 0)])


@dataclass(frozen=True)
class Decision:
    """The image gate (its score and threshold), the pixel threshold and the smallest region
    kept, and whether the probabilities come from flip test-time augmentation (see the module doc)."""

    threshold: float
    min_region_share: float = 0.0
    image_threshold: float = 0.0
    flip_tta: bool = False
    score_top_share: float = 0.0
    head_score: bool = False

    def score(self, probability: np.ndarray, head: float | None = None) -> float:
        """The image score the gate compares with ``image_threshold``: the image head's
        probability ``head`` where the decision uses it, else from the pixel probabilities."""
        if self.head_score:
            if head is None:
                raise ValueError("this decision gates on the model's image head: pass its probability")
            return float(head)
        return image_score(probability, self.score_top_share)

    def apply(self, probability: np.ndarray, head: float | None = None) -> np.ndarray:
        """The boolean mask of one probability map (H, W), the image head's probability ``head`` given where the decision uses it."""
        if self.score(probability, head) <= self.image_threshold:
            return np.zeros(probability.shape, dtype=bool)
        predicted = probability > self.threshold
        if self.min_region_share == 0.0:
            return predicted
        height, width = predicted.shape
        return drop_small_regions(predicted, self.min_region_share * height * width)
