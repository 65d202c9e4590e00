"""The preprocessed splits as in-memory arrays and a torch Dataset over them."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from defectseg.errors import DataError


@dataclass(frozen=True)
class Split:
    """One split from preprocess: uint8 images, 0/1 masks, ids and defect classes."""

    images: np.ndarray
    masks: np.ndarray
    ids: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def load_split(path: Path) -> Split:
    """Read ``<split>.npz`` written by the preprocess stage."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return Split(arrays["images"], arrays["masks"], arrays["ids"], arrays["classes"])
    except FileNotFoundError:
        raise DataError(path, "preprocessed split not found: run the preprocess stage first") from None
    except (KeyError, ValueError, OSError) as exc:
        raise DataError(path, f"not a preprocessed split ({exc})") from None


@dataclass(frozen=True)
class Normalization:
    """Pixel scaling: ``(pixel / 255 - mean) / std``."""

    mean: float
    std: float

    @classmethod
    def of(cls, images: np.ndarray) -> "Normalization":
        scaled = images.astype(np.float64) / 255
        return cls(float(scaled.mean()), float(max(scaled.std(), 1e-3)))

    def apply(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (..., H, W) to normalized float32 (..., 1, H, W)."""
        tensor = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255)
        return tensor.sub_(self.mean).div_(self.std).unsqueeze(-3)


class SegmentationDataset(Dataset):
    """Normalized image and float mask tensors of shape (1, H, W), optionally augmented."""

    def __init__(self, split: Split, normalization: Normalization, augment=None):
        self.split = split
        self.normalization = normalization
        self.augment = augment

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.split.images[index], self.split.masks[index]
        if self.augment is not None:
            out = self.augment(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        return self.normalization.apply(image), torch.from_numpy(np.ascontiguousarray(mask)).float().unsqueeze(0)
