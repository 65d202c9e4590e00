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


def gate_for_false_alarms(free_scores: np.ndarray, max_false_alarm_rate: float) -> float:
    """The lowest image threshold under which at most ``max_false_alarm_rate`` of the
    defect-free images score above it (0.0, no gate, when there are none)."""
    if len(free_scores) == 0:
        return 0.0
    allowed = int(np.floor(max_false_alarm_rate * len(free_scores) + 1e-9))
    if allowed >= len(free_scores):
        return 0.0
    return float(np.sort(free_scores)[::-1][allowed])


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
