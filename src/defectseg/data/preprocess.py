"""The preprocess stage: resize every pair once and store each split as uint8 arrays.

With ``geometry: squash`` every tile is resized to ``image_size``; with ``geometry: scale``
each keeps its aspect ratio and is resized by the one factor ``scale`` (1.0: untouched), so a
2-px crack stays 2 px wide whatever the tile's shape. Images are resized with an area filter
when shrinking and bilinear when enlarging.
Masks are binarized at ``mask_threshold`` at full size, then resized as a coverage
map (area filter) and kept where at least ``mask_coverage`` of a pixel's source area
is defect, so a one-pixel crack survives a 2x reduction instead of vanishing.
Output: the pairs in 64 shards, ``pairs-NN.npz`` where NN is the first byte of the SHA-256 of
each pair's id modulo 64, so one relabelled pair rewrites one small shard instead of the whole set
(DVC stores whole files: one changed byte of a single array file would add all of it to the
cache and every remote). A shard holds its pairs' ``ids`` and ``classes`` (sorted by id) and
their uint8 ``images`` and 0/1 ``masks``: stacked (k, H, W) where every pair has one size,
else one ``image<i>`` and ``mask<i>`` per pair. Each fold's roles stay in the manifest, so
changing the folds does not change this output. Unchanged inputs give byte-identical shards.
"""

import hashlib
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from defectseg.config.preprocess import PreprocessParams
from defectseg.data.images import read_image, read_mask
from defectseg.data.manifest import read_manifest
from defectseg.errors import DataError
from defectseg.foundation.atomic import atomic_dir, write_json


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a uint8 image: area filter to shrink, bilinear to enlarge."""
    shrinking = height * width < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def binarize_mask(mask: np.ndarray, threshold: int) -> np.ndarray:
    """0/1 mask of the pixels strictly above ``threshold``."""
    return (mask > threshold).astype(np.uint8)


def resize_mask(binary: np.ndarray, height: int, width: int, coverage: float) -> np.ndarray:
    """Resize a 0/1 mask, keeping pixels whose defect coverage is at least ``coverage``."""
    if binary.shape == (height, width):
        return binary
    covered = cv2.resize(binary.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    return (covered >= coverage - 1e-6).astype(np.uint8)


def load_pair(image_path: str, mask_path: str, params: PreprocessParams) -> tuple[np.ndarray, np.ndarray]:
    """Read one pair and return it resized (``PreprocessParams.size_for``): uint8 image and 0/1 mask."""
    image = read_image(Path(image_path))
    height, width = params.size_for(*image.shape)
    if image.shape != (height, width):
        image = resize_image(image, height, width)
    mask = read_mask(Path(mask_path))
    mask = resize_mask(binarize_mask(mask, params.mask_threshold), height, width, params.mask_coverage)
    return image, mask


SHARD_PATTERN = "pairs-*.npz"
# 64 shards: the Magnetic Tile set's 1,076 pairs make shards of ~1.6 MiB at 224 px (what one
# relabel adds to the cache), and reading 64 files is no slower than reading one (bench/load_pairs.py)
SHARDS = 64


def shard_name(pair_id: str) -> str:
    """The shard file that holds the pair ``pair_id``: by the first byte of its id's SHA-256, modulo ``SHARDS``."""
    return f"pairs-{hashlib.sha256(pair_id.encode()).digest()[0] % SHARDS:02d}.npz"


def shard_arrays(ids: list[str], classes: list[str], images: list[np.ndarray], masks: list[np.ndarray]) -> dict[str, np.ndarray]:
    """One shard's arrays: ids, classes, and the pairs stacked where they share a size, else one array each."""
    arrays = {"ids": np.array(ids, dtype=str), "classes": np.array(classes, dtype=str)}
    if len({image.shape for image in images}) == 1:
        return {**arrays, "images": np.stack(images), "masks": np.stack(masks)}
    for i, (image, mask) in enumerate(zip(images, masks)):
        arrays[f"image{i}"], arrays[f"mask{i}"] = image, mask
    return arrays


def preprocess(manifest_path: Path, params: PreprocessParams, out_dir: Path) -> dict:
    """Run the preprocess stage into ``out_dir``; return the size, count and defect pixel share."""
    manifest = read_manifest(manifest_path)
    if manifest.empty:
        raise DataError(manifest_path, "manifest lists no pairs")
    with atomic_dir(out_dir) as tmp, ThreadPoolExecutor(os.cpu_count()) as pool:
        pairs = dict(zip(manifest.index, pool.map(lambda r: load_pair(r[0], r[1], params), zip(manifest["image"], manifest["mask"]))))
        shards = defaultdict(list)
        for pair_id in sorted(pairs):
            shards[shard_name(pair_id)].append(pair_id)
        for name, ids in sorted(shards.items()):
            images, masks = zip(*(pairs[i] for i in ids))
            np.savez(tmp / name, **shard_arrays(ids, list(manifest.loc[ids, "defect_class"]), list(images), list(masks)))
        defect_pixels = sum(int(mask.sum()) for _, mask in pairs.values())
        all_pixels = sum(mask.size for _, mask in pairs.values())
        sizes = sorted({image.shape for image, _ in pairs.values()})
        size = {"height": sizes[0][0], "width": sizes[0][1]} if len(sizes) == 1 else {"sizes": len(sizes), "scale": params.scale}
        info = {**size, "count": len(pairs), "shards": len(shards), "defect_pixel_share": defect_pixels / all_pixels}
        write_json(tmp / "info.json", info)
    return info
