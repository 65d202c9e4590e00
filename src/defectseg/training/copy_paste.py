"""Copy-paste defect injection: a train tile's defect, mask and pixels, blended into a defect-free tile.

After Caruso et al., "Dynamic Label Injection for Imbalanced Industrial Defect Segmentation"
(ECCV Workshops 2024), which on the Magnetic Tile set beat focal, weighted and class-balanced
losses by pasting rare classes' defects into defect-free tiles, blended either by Poisson
seamless cloning or by plain cut-and-paste. Here a share of the pastes (``poisson_share``) uses
OpenCV's seamless cloning, which keeps the defect's gradients and takes the surface's shading;
the rest paste the pixels under a feathered edge, which keeps the defect's own contrast. The
pasted region is the bounding box of the source's defect pixels (with a small margin), placed
at a random spot of the target; the target's mask becomes the source's mask there.
"""

import cv2
import numpy as np

# pixels of surface kept around the defect's bounding box, so its edge blends into the target
MARGIN = 4
# standard deviation (pixels) of the feathered edge of a cut-and-paste
FEATHER_SIGMA = 1.5


def _box(mask: np.ndarray, height: int, width: int) -> tuple[slice, slice]:
    """The bounding box of ``mask``'s defect pixels with a margin, clipped to the mask and to a target of ``height`` x ``width``."""
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    top, left = max(rows[0] - MARGIN, 0), max(columns[0] - MARGIN, 0)
    bottom = min(rows[-1] + 1 + MARGIN, mask.shape[0], top + height)
    right = min(columns[-1] + 1 + MARGIN, mask.shape[1], left + width)
    return slice(top, bottom), slice(left, right)


def paste_defect(
    image: np.ndarray, mask: np.ndarray, source_image: np.ndarray, source_mask: np.ndarray, seed: int, poisson_share: float
) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (uint8) and ``mask`` (0/1) with the source tile's defect pasted in at a random
    spot, seeded by ``seed``; unchanged if the source has no defect pixel."""
    if not source_mask.any():
        return image, mask
    rng = np.random.default_rng(seed)
    rows, columns = _box(source_mask, *image.shape)
    patch, patch_mask = source_image[rows, columns], source_mask[rows, columns]
    height, width = patch.shape
    top, left = int(rng.integers(0, image.shape[0] - height + 1)), int(rng.integers(0, image.shape[1] - width + 1))
    region = (slice(top, top + height), slice(left, left + width))
    out, out_mask = image.copy(), mask.copy()
    if rng.random() < poisson_share and min(height, width) > 2 * MARGIN:
        blend = (cv2.dilate(patch_mask, np.ones((2 * MARGIN - 1,) * 2, np.uint8)) * 255).astype(np.uint8)
        blend[[0, -1], :], blend[:, [0, -1]] = 0, 0  # seamless cloning needs the blended region off the patch's border
        x, y, w, h = cv2.boundingRect(blend)
        center = (left + x + w // 2, top + y + h // 2)  # OpenCV puts the blended box's top-left at center - size // 2
        cloned = cv2.seamlessClone(cv2.merge([patch] * 3), cv2.merge([image] * 3), blend, center, cv2.NORMAL_CLONE)
        out[region] = cloned[..., 0][region]
    else:
        alpha = cv2.GaussianBlur(patch_mask.astype(np.float32), (0, 0), FEATHER_SIGMA)
        alpha = np.maximum(alpha / max(float(alpha.max()), 1e-6), patch_mask)
        out[region] = np.round(alpha * patch + (1 - alpha) * image[region]).astype(np.uint8)
    out_mask[region] = np.maximum(out_mask[region], patch_mask)
    return out, out_mask
