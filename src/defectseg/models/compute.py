"""Running a module on tensors: where (device), how (bf16, memory format), and in batches.

Training (validation) and inference (``models.inference``) both run models through here; training
needs nothing else of inference, so the train stage does not depend on how saved models are loaded.
"""

from dataclasses import dataclass

import numpy as np
import torch

from defectseg.errors import DefectsegError
from defectseg.foundation.threads import budget_threads


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
