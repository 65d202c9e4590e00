"""The preprocessed pairs as in-memory arrays, one fold's train/val/test of them, and a torch Dataset."""

import contextlib
import hashlib
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from defectseg.data.manifest import read_manifest
from defectseg.data.preprocess import SHARD_PATTERN
from defectseg.data.splits import SPLITS, fold_column
from defectseg.errors import DataError


@dataclass(frozen=True)
class Split:
    """One split from preprocess: uint8 images, 0/1 masks, ids and defect classes.

    Images and masks are (N, H, W) arrays where every pair has one size, else object
    arrays of N (H, W) arrays; either indexes by position.
    """

    images: np.ndarray
    masks: np.ndarray
    ids: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def select(self, index: np.ndarray) -> "Split":
        """The pairs at ``index`` (positions), in that order."""
        return Split(self.images[index], self.masks[index], self.ids[index], self.classes[index])

    def has_defect(self) -> np.ndarray:
        """Per pair, whether its mask has any defect pixel."""
        if self.masks.dtype == object:
            return np.array([mask.any() for mask in self.masks], dtype=bool)
        return self.masks.reshape(len(self), -1).any(axis=1)


def image_array(arrays: list[np.ndarray]) -> np.ndarray:
    """(N, H, W) where every array has one size, else an object array of the (H, W) arrays."""
    if len({a.shape for a in arrays}) <= 1:
        return np.stack(arrays) if arrays else np.zeros((0, 0, 0), np.uint8)
    objects = np.empty(len(arrays), dtype=object)
    for position, array in enumerate(arrays):
        objects[position] = array
    return objects


def _member(path: Path, arrays, name: str) -> np.ndarray:
    """One array of an opened shard; a damaged file is one ``DataError`` that says how to restore it."""
    try:
        return arrays[name]
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(path, f"damaged preprocessed shard ({detail}): run `dvc repro -f preprocess` or `dvc checkout {path.parent}`") from None


def _open_shard(path: Path):
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(path, f"damaged preprocessed shard ({detail}): run `dvc repro -f preprocess` or `dvc checkout {path.parent}`") from None


# threads reading shards at once: 2 read MTD's shards in 119 ms, 1 in 151 ms, 4 in 213 ms (2 cores)
READ_THREADS = 2


def _stacked_shape(path: Path, arrays, kind: str) -> tuple[int, ...] | None:
    """(H, W) of a shard that stacks its pairs' ``kind`` arrays (all of one size), read from the
    array's header alone; None for a shard that keeps one array per pair."""
    if f"{kind}s" not in arrays.files:
        return None
    try:
        with arrays.zip.open(f"{kind}s.npy") as member:
            version = np.lib.format.read_magic(member)
            header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            return header(member)[0][1:]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(path, f"damaged preprocessed shard ({exc}): run `dvc repro -f preprocess` or `dvc checkout {path.parent}`") from None


def _pixels(shards: list, counts: list[int], slots: np.ndarray, kind: str) -> np.ndarray:
    """Every shard's ``kind`` (image or mask) arrays, each written once into its slot: one
    (N, H, W) array where all pairs have one size, else an object array of (H, W) arrays."""
    shapes = {_stacked_shape(path, arrays, kind) for path, arrays in shards}
    dense = len(shapes) == 1 and None not in shapes
    out = np.empty((len(slots), *shapes.pop()), np.uint8) if dense else np.empty(len(slots), dtype=object)

    def fill(shard: tuple, where: np.ndarray) -> None:
        path, arrays = shard
        if f"{kind}s" not in arrays.files:
            for i, slot in enumerate(where):
                out[slot] = _member(path, arrays, f"{kind}{i}")
        elif dense:
            out[where] = _member(path, arrays, f"{kind}s")
        else:
            for slot, array in zip(where, _member(path, arrays, f"{kind}s")):
                out[slot] = array

    # reading (with its CRC check) and copying release the GIL: shards fill in parallel
    with ThreadPoolExecutor(READ_THREADS) as pool:
        list(pool.map(fill, shards, np.split(slots, np.cumsum(counts)[:-1])))
    return out


def load_split(folder: Path) -> Split:
    """Every pair the preprocess stage wrote into ``folder``, sorted by id (the manifest's order).

    Each shard's pixels are written straight to their place in one array, so loading costs
    about what reading one array file of the same pairs did (``bench/load_pairs.py``).
    """
    folder = Path(folder)
    paths = sorted(folder.glob(SHARD_PATTERN)) if folder.is_dir() else []
    if not paths:
        raise DataError(folder, "no preprocessed pairs: run `dvc repro preprocess` (or `dvc pull`)")
    with contextlib.ExitStack() as stack:
        shards = [(path, stack.enter_context(_open_shard(path))) for path in paths]
        ids = [_member(path, arrays, "ids") for path, arrays in shards]
        classes = np.concatenate([_member(path, arrays, "classes") for path, arrays in shards])
        counts = [len(part) for part in ids]
        ids = np.concatenate(ids)
        order = np.argsort(ids, kind="stable")
        slots = np.empty(len(ids), dtype=np.int64)
        slots[order] = np.arange(len(ids))
        images, masks = (_pixels(shards, counts, slots, kind) for kind in ("image", "mask"))
    return Split(images, masks, ids[order], classes[order])


def preprocessed_fingerprint(folder: Path) -> str:
    """SHA-256 over the preprocess stage's shards in ``folder``: their names and bytes."""
    digest = hashlib.sha256()
    for shard in sorted(Path(folder).glob(SHARD_PATTERN)):
        digest.update(shard.name.encode())
        digest.update(hashlib.sha256(shard.read_bytes()).digest())
    return digest.hexdigest()


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


def load_fold(pairs_dir: Path, manifest_path: Path, fold: int) -> dict[str, Split]:
    """The preprocessed pairs (in ``pairs_dir``) split into ``fold``'s train, val and test."""
    return split_fold(load_split(pairs_dir), read_manifest(manifest_path), manifest_path, fold)


@dataclass(frozen=True)
class Normalization:
    """Pixel scaling: ``(pixel / 255 - mean) / std``."""

    mean: float
    std: float

    @classmethod
    def of(cls, images: np.ndarray) -> "Normalization":
        """The mean and standard deviation of every pixel of ``images`` ((N, H, W) or an object array of (H, W))."""
        pixels = np.concatenate([image.reshape(-1) for image in images]) if images.dtype == object else images
        scaled = pixels.astype(np.float64) / 255
        return cls(float(scaled.mean()), float(max(scaled.std(), 1e-3)))

    def apply(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (..., H, W) to normalized float32 (..., 1, H, W)."""
        tensor = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255)
        return tensor.sub_(self.mean).div_(self.std).unsqueeze(-3)


class SegmentationDataset(Dataset):
    """Normalized image and float mask tensors of shape (1, H, W), optionally augmented.

    An item is an index, or an (index, seed, source) triple (``loader.EpochSampler``): the
    seed seeds the augmentation of that one image, so it does not depend on which process
    draws it, and a source other than -1 is the tile whose defect ``paste`` (image, mask,
    source image, source mask, seed) blends into this one first.
    """

    def __init__(self, split: Split, normalization: Normalization, augment=None, paste=None):
        self.split = split
        self.normalization = normalization
        self.augment = augment
        self.paste = paste

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, item: int | tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed, source = item if isinstance(item, tuple) else (item, None, -1)
        image, mask = self.split.images[index], self.split.masks[index]
        if source >= 0:
            image, mask = self.paste(image, mask, self.split.images[source], self.split.masks[source], seed)
        if self.augment is not None:
            if seed is not None:
                self.augment.set_random_seed(seed)
            out = self.augment(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        return self.normalization.apply(image), torch.from_numpy(np.ascontiguousarray(mask)).float().unsqueeze(0)
