"""The preprocess stage: resize every pair once and store each split as uint8 arrays.

Images are resized with an area filter when shrinking and bilinear when enlarging.
Masks are binarized at ``mask_threshold`` at full size, then resized as a coverage
map (area filter) and kept where at least ``mask_coverage`` of a pixel's source area
is defect, so a one-pixel crack survives a 2x reduction instead of vanishing.
Output: ``pairs.npz`` with ``images`` and ``masks`` (N, H, W) uint8 (masks 0/1), ``ids``
and ``classes`` of every pair in manifest order; each fold's roles stay in the manifest,
so changing the folds does not change this output.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from defectseg.atomic import atomic_dir, write_json
from defectseg.errors import DataError
from defectseg.images import read_image, read_mask
from defectseg.manifest import read_manifest
from defectseg.params import PreprocessParams


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
    """Read one pair and return it resized: uint8 image and 0/1 mask."""
    height, width = params.height_width
    image = resize_image(read_image(Path(image_path)), height, width)
    mask = read_mask(Path(mask_path))
    mask = resize_mask(binarize_mask(mask, params.mask_threshold), height, width, params.mask_coverage)
    return image, mask


PAIRS = "pairs.npz"


def preprocess(manifest_path: Path, params: PreprocessParams, out_dir: Path) -> dict:
    """Run the preprocess stage into ``out_dir``; return the size, count and defect pixel share."""
    manifest = read_manifest(manifest_path)
    if manifest.empty:
        raise DataError(manifest_path, "manifest lists no pairs")
    height, width = params.height_width
    with atomic_dir(out_dir) as tmp, ThreadPoolExecutor(os.cpu_count()) as pool:
        pairs = list(pool.map(lambda r: load_pair(r[0], r[1], params), zip(manifest["image"], manifest["mask"])))
        masks = np.stack([p[1] for p in pairs])
        np.savez(
            tmp / PAIRS,
            images=np.stack([p[0] for p in pairs]),
            masks=masks,
            ids=manifest.index.to_numpy(str),
            classes=manifest["defect_class"].to_numpy(str),
        )
        info = {"height": height, "width": width, "count": len(pairs), "defect_pixel_share": float(masks.mean())}
        write_json(tmp / "info.json", info)
    return info
