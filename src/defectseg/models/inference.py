"""Running a model: where (device), how (bf16, memory format), and from pixels to probabilities.

Training (validation), evaluate, ``defectseg predict`` and the benchmarks all go
through here, so a mask means the same thing wherever it was made: the image is
resized as preprocess resized the model's training data (to its input size, or by its
scale), the probability map is resized back to the image's own size, and the saved
``Decision`` is applied there. Images of several sizes are run in batches of one size,
each padded to a multiple of what the model's sides must divide by.
"""

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from defectseg.config.preprocess import PreprocessParams
from defectseg.data.preprocess import resize_image
from defectseg.errors import DefectsegError
from defectseg.foundation.threads import budget_threads
from defectseg.models.encoder_unet import split_logits
from defectseg.models.saved_model import SavedModel


def pick_device(name: str, key: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; torch and OpenCV get this process's share of
    the cores (``threads.budget_threads``).

    ``key`` names the setting the choice came from (``train.device``, ``--device``),
    so an unavailable device is reported against what the user wrote.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise DefectsegError(f"{key} is cuda but no CUDA device is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise DefectsegError(f"{key} is mps but MPS is not available")
    budget_threads()
    return torch.device(name)


@dataclass(frozen=True)
class Compute:
    """Where and how tensors are computed: device, bf16 autocast, memory format."""

    device: torch.device
    bf16: bool = False
    channels_last: bool = False

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def put(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, non_blocking=True)
        return batch.contiguous(memory_format=torch.channels_last) if self.channels_last else batch

    def place(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model moved to the device, in the configured memory format."""
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model


def predict_logits(model: torch.nn.Module, images: torch.Tensor, compute: Compute, batch_size: int, side_multiple: int = 1) -> torch.Tensor:
    """Float32 logits for normalized (N, 1, H, W) images, in eval mode, on the CPU; images whose
    sides do not divide by ``side_multiple`` are run padded (edge pixels repeated), their logits cropped back."""
    model.eval()
    height, width = images.shape[-2:]
    padding = (0, -width % side_multiple, 0, -height % side_multiple)
    outputs = []
    with torch.no_grad(), compute.autocast():
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            batch = torch.nn.functional.pad(batch, padding, mode="replicate") if any(padding) else batch
            outputs.append(model(compute.put(batch)).float().cpu()[..., :height, :width])
    return torch.cat(outputs) if outputs else torch.zeros((0, *images.shape[1:]))


def same_size_groups(images: np.ndarray) -> list[np.ndarray]:
    """Positions of ``images`` ((N, H, W), or an object array of (H, W) arrays) grouped by size, each group in order."""
    if images.dtype != object:
        return [np.arange(len(images))]
    groups: dict[tuple[int, int], list[int]] = {}
    for position, image in enumerate(images):
        groups.setdefault(image.shape, []).append(position)
    return [np.array(positions) for positions in groups.values()]


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
