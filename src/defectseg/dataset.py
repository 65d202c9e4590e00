"""The preprocessed pairs as in-memory arrays, one fold's train/val/test of them, and a torch Dataset."""

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from defectseg.errors import DataError
from defectseg.manifest import read_manifest
from defectseg.splits import SPLITS, fold_column


@dataclass(frozen=True)
class Split:
    """One split from preprocess: uint8 images, 0/1 masks, ids and defect classes."""

    images: np.ndarray
    masks: np.ndarray
    ids: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def select(self, index: np.ndarray) -> "Split":
        """The pairs at ``index`` (positions), in that order."""
        return Split(self.images[index], self.masks[index], self.ids[index], self.classes[index])


def load_split(path: Path) -> Split:
    """Read the ``.npz`` pairs written by the preprocess stage; a damaged file is one ``DataError``
    that says how to restore it."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return Split(arrays["images"], arrays["masks"], arrays["ids"], arrays["classes"])
    except FileNotFoundError:
        raise DataError(path, "preprocessed split not found: run `dvc repro preprocess` (or `dvc pull`)") from None
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(path, f"damaged preprocessed split ({detail}): run `dvc repro -f preprocess` or `dvc checkout {path}`") from None


def split_fold(pairs: Split, manifest: pd.DataFrame, manifest_path: Path, fold: int) -> dict[str, Split]:
    """``pairs`` split into ``fold``'s train, val and test by the roles in ``manifest`` (read from ``manifest_path``)."""
    column = fold_column(fold)
    if column not in manifest:
        made = sum(name.startswith("fold") for name in manifest.columns)
        raise DataError(manifest_path, f"has no fold {fold}: prepare made {made} fold(s); re-run prepare after changing compare.folds")
    missing = sorted(set(pairs.ids.tolist()) - set(manifest.index))
    if missing:
        raise DataError(manifest_path, f"lists no pair for preprocessed id(s) {missing[:5]}: re-run prepare and preprocess")
    roles = manifest.loc[list(pairs.ids), column].to_numpy(str)
    return {role: pairs.select(np.flatnonzero(roles == role)) for role in SPLITS}


def load_fold(pairs_path: Path, manifest_path: Path, fold: int) -> dict[str, Split]:
    """The preprocessed pairs split into ``fold``'s train, val and test."""
    return split_fold(load_split(pairs_path), read_manifest(manifest_path), manifest_path, fold)


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
    """Normalized image and float mask tensors of shape (1, H, W), optionally augmented.

    An item is an index, or an (index, seed) pair that seeds the augmentation of that one
    image (``loader.EpochSampler``), so it does not depend on which process draws it.
    """

    def __init__(self, split: Split, normalization: Normalization, augment=None):
        self.split = split
        self.normalization = normalization
        self.augment = augment

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = item if isinstance(item, tuple) else (item, None)
        image, mask = self.split.images[index], self.split.masks[index]
        if self.augment is not None:
            if seed is not None:
                self.augment.set_random_seed(seed)
            out = self.augment(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        return self.normalization.apply(image), torch.from_numpy(np.ascontiguousarray(mask)).float().unsqueeze(0)
