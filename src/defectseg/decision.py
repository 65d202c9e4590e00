"""From defect probabilities to a mask: the threshold, then dropping specks.

Evaluate chooses the threshold on val and saves it with ``min_region_share`` beside the
model (``threshold.json``); predict applies the same ``Decision``, so both agree.
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


@dataclass(frozen=True)
class Decision:
    """Pixels above ``threshold`` are defect, except regions under ``min_region_share`` of the image area."""

    threshold: float
    min_region_share: float = 0.0

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        """Boolean masks for probabilities of shape (H, W) or (N, H, W)."""
        predicted = probabilities > self.threshold
        if self.min_region_share == 0.0:
            return predicted
        height, width = predicted.shape[-2:]
        min_pixels = self.min_region_share * height * width
        flat = predicted.reshape(-1, height, width)
        return np.stack([drop_small_regions(mask, min_pixels) for mask in flat]).reshape(predicted.shape)
