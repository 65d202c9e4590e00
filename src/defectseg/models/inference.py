"""Running a saved model: from pixels to probabilities (the device and batches: ``models.compute``).

Training (validation), evaluate, ``defectseg predict`` and the benchmarks all go
through here, so a mask means the same thing wherever it was made: the image is
resized as preprocess resized the model's training data (to its input size, or by its
scale), the probability map is resized back to the image's own size, and the saved
``Decision`` is applied there. Images of several sizes are run in batches of one size,
each padded to a multiple of what the model's sides must divide by.
"""

import cv2
import numpy as np
import torch

from defectseg.config.preprocess import PreprocessParams
from defectseg.data.preprocess import resize_image
from defectseg.models.compute import Compute, predict_logits, same_size_groups
from defectseg.models.encoder_unet import split_logits
from defectseg.models.saved_model import SavedModel


def predict_outputs(saved: SavedModel, images: np.ndarray, batch_size: int, compute: Compute, flips: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Defect probabilities for uint8 images as the model takes them (``model_input``) and, from
    a model with an image head, each image's "has a defect" probability (N,).

    ``images`` is (N, H, W), giving (N, H, W) float32 probabilities, or an object array of
    (H, W) images of several sizes, giving an object array of maps of their sizes. With
    ``flips`` (test-time augmentation) both are the mean over the image and its horizontal
    and vertical mirror images, each mapped back.
    """
    groups = same_size_groups(images)
    if len(groups) == 1:
        return _predict_same_size(saved, np.stack(list(images)) if images.dtype == object else images, batch_size, compute, flips)
    probabilities, scores = np.empty(len(images), dtype=object), np.zeros(len(images))
    for positions in groups:
        group, group_scores = _predict_same_size(saved, np.stack(list(images[positions])), batch_size, compute, flips)
        for position, probability in zip(positions, group):
            probabilities[position] = probability
        if group_scores is not None:
            scores[positions] = group_scores
        else:
            scores = None
    return probabilities, scores


def _predict_same_size(saved: SavedModel, images: np.ndarray, batch_size: int, compute: Compute, flips: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """``predict_outputs`` for (N, H, W) images of one size."""
    model = compute.place(saved.model)
    multiple = saved.side_multiple
    pixels = saved.normalization.apply(images)
    views = [(), (-1,), (-2,)] if flips else [()]
    total, image_total = torch.zeros(pixels.shape), None
    for dims in views:
        view = pixels.flip(dims) if dims else pixels
        logits, image_logits = split_logits(predict_logits(model, view, compute, batch_size, multiple))
        total += torch.sigmoid(logits.flip(dims) if dims else logits)
        if image_logits is not None:
            image_total = torch.sigmoid(image_logits) + (0 if image_total is None else image_total)
    scores = None if image_total is None else (image_total / len(views)).numpy()
    return (total / len(views)).squeeze(1).numpy(), scores


def per_image_heads(scores: np.ndarray | None, count: int) -> list[float | None]:
    """Each of ``count`` images' head probability from ``predict_outputs``, or None per image
    from a model without a head (what ``Decision.apply`` takes)."""
    return [None] * count if scores is None else [float(s) for s in scores]


def model_input(saved: SavedModel, image: np.ndarray) -> np.ndarray:
    """A uint8 image of any size resized as preprocess resized the model's training data: to its
    input size, or (``preprocess.geometry: scale``) by its scale, keeping its shape."""
    if "input_size" in saved.metadata:
        return resize_image(image, *saved.metadata["input_size"])
    height, width = PreprocessParams.model_validate(saved.metadata["preprocess"]).size_for(*image.shape)
    return image if image.shape == (height, width) else resize_image(image, height, width)


def at_size(probability: np.ndarray, height: int, width: int) -> np.ndarray:
    """A probability map (h, w) resized bilinearly to (height, width)."""
    if probability.shape == (height, width):
        return probability
    return cv2.resize(probability, (width, height), interpolation=cv2.INTER_LINEAR)
