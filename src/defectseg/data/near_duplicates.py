"""Near-duplicate images: one object photographed again, found by what survives a new exposure.

A re-exposure changes brightness, contrast and sensor noise, so byte or pixel hashes miss
it; what survives is the surface's fine structure. Each image is shrunk to a 32x32
thumbnail (area average, whatever its size or aspect), its shading removed by subtracting
a Gaussian blur (sigma 2 thumbnail pixels), and scaled to zero mean and unit length. Two
images' similarity is the correlation of their thumbnails (-1 to 1): unchanged by any
gain and offset of either image.

Measured on the Magnetic Tile copy (1,079 images, about 1 s for the thumbnails and their
correlations on 2 cores): the recaptured crack of the data README (``exp4_num_85998`` and
``exp4_num_88149``, 2,000 frames apart) correlates 0.964; 99.99% of the pairs of images
from different frame groups stay under 0.92, and the few above 0.95 are recaptures of one
tile (``docs/data.md``). The correlation is taken over whole images: two crops of
different regions of one tile are not found, which is why the MTD layout also groups by
frame numbers (``defectseg.data.groups``).
"""

from dataclasses import dataclass

import cv2
import numpy as np

THUMBNAIL = 32
SHADING_SIGMA = 2.0
BLOCK = 2048


FLAT = 0.01


def thumbnail(image: np.ndarray) -> np.ndarray:
    """The image's unit-length, zero-mean, high-pass 32x32 thumbnail, flattened (float32); all
    zeros for a featureless image (detail under 0.01 grey levels RMS), which then matches nothing."""
    small = cv2.resize(image.astype(np.float32), (THUMBNAIL, THUMBNAIL), interpolation=cv2.INTER_AREA)
    detail = small - cv2.GaussianBlur(small, (0, 0), SHADING_SIGMA)
    detail -= detail.mean()
    norm = float(np.linalg.norm(detail))
    if norm < FLAT * THUMBNAIL:
        return np.zeros(THUMBNAIL * THUMBNAIL, np.float32)
    return (detail / norm).ravel()


@dataclass(frozen=True)
class ImagePair:
    """Two images (positions in the list of thumbnails) and their similarity."""

    a: int
    b: int
    similarity: float


def _blocks(thumbnails: np.ndarray):
    """Row blocks of the upper triangle of the similarity matrix: (first row, similarities, column mask j > i)."""
    n = len(thumbnails)
    for start in range(0, n, BLOCK):
        rows = thumbnails[start : start + BLOCK] @ thumbnails.T
        upper = np.arange(n)[None, :] > np.arange(start, start + len(rows))[:, None]
        yield start, rows, upper


def near_duplicate_pairs(thumbnails: np.ndarray, threshold: float) -> list[ImagePair]:
    """Every pair of images whose similarity is at least ``threshold``, computed in blocks of rows."""
    found = []
    for start, rows, upper in _blocks(thumbnails):
        for i, j in zip(*np.nonzero((rows >= threshold) & upper)):
            found.append(ImagePair(start + int(i), int(j), float(rows[i, j])))
    return found


def closest_across(thumbnails: np.ndarray, labels: np.ndarray, count: int, threshold: float) -> tuple[int, list[ImagePair]]:
    """Among pairs of images with different ``labels`` (roles): how many are at least ``threshold``
    similar, and the ``count`` most similar pairs, most similar first."""
    crossing, best = 0, []
    for start, rows, upper in _blocks(thumbnails):
        across = upper & (labels[start : start + len(rows), None] != labels[None, :])
        scores = np.where(across, rows, -np.inf)
        crossing += int((scores >= threshold).sum())
        flat = scores.ravel()
        top = np.argpartition(-flat, min(count, flat.size - 1))[:count] if count else []
        best += [ImagePair(start + int(k // rows.shape[1]), int(k % rows.shape[1]), float(flat[k])) for k in top if np.isfinite(flat[k])]
    best.sort(key=lambda pair: (-pair.similarity, pair.a, pair.b))
    return crossing, best[:count]
