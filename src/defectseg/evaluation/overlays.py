"""Overlay pictures: image, truth and prediction side by side, errors in colour.

In the prediction panel true positives are green, false positives red and false
negatives blue, drawn over the grayscale image.
"""

import numpy as np

TP_COLOUR = (0, 200, 0)
FP_COLOUR = (230, 30, 30)
FN_COLOUR = (40, 90, 255)


def _rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2).astype(np.float32)


def _paint(base: np.ndarray, where: np.ndarray, colour: tuple[int, int, int], alpha: float = 0.6) -> None:
    base[where] = (1 - alpha) * base[where] + alpha * np.array(colour, np.float32)


def overlay_panel(image: np.ndarray, truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """An RGB uint8 picture: [image | truth in green | prediction with TP/FP/FN colours]."""
    truth, predicted = truth.astype(bool), predicted.astype(bool)
    truth_panel = _rgb(image)
    _paint(truth_panel, truth, TP_COLOUR)
    errors = _rgb(image)
    _paint(errors, truth & predicted, TP_COLOUR)
    _paint(errors, predicted & ~truth, FP_COLOUR)
    _paint(errors, truth & ~predicted, FN_COLOUR)
    gap = np.full((image.shape[0], 4, 3), 255, np.float32)
    return np.concatenate([_rgb(image), gap, truth_panel, gap, errors], axis=1).round().astype(np.uint8)


def prediction_overlay(image: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """An RGB uint8 picture of the image with predicted defect pixels in red."""
    picture = _rgb(image)
    _paint(picture, predicted.astype(bool), FP_COLOUR, alpha=0.5)
    return picture.round().astype(np.uint8)
