"""Deterministic synthetic tiles: textured grayscale surfaces with exact defect masks.

Each tile is a noisy, unevenly lit surface with harmless look-alikes (smooth stains,
bright specks, faint grooves) so that no brightness threshold separates defects from
background. Five defect kinds mimic the Magnetic Tile classes: thin cracks, round
blowholes, edge breaks, frayed edges and uneven patches.

Like the Magnetic Tile set, which photographs each physical tile up to six times, every
synthetic object is written as ``exposures`` images (one group): the same surface and
defect under another gain and offset, fresh sensor noise and a shift of up to 2 pixels.
Image ``i`` is exposure ``i % exposures`` of object ``i // exposures``, and depends only on
the seed, ``i`` and ``exposures``, so adding images never changes existing ones.
"""

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from defectseg.config.data import SyntheticParams
from defectseg.data.layouts import FREE, Pair

DEFECT_KINDS = ("crack", "blowhole", "break", "fray", "uneven")


@dataclass(frozen=True)
class Tile:
    """A generated image, its binary mask (0/255) and its class."""

    image: np.ndarray
    mask: np.ndarray
    defect_class: str


def _smooth_noise(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Zero-mean, unit-ish noise with features about ``scale`` pixels wide."""
    noise = rng.standard_normal((size, size)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), scale)
    return noise / (noise.std() + 1e-6)


def _surface(rng: np.random.Generator, size: int) -> np.ndarray:
    base = rng.uniform(85, 165)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = rng.uniform(0, 2 * np.pi)
    light = rng.uniform(-25, 25) * (np.cos(angle) * xx + np.sin(angle) * yy - 0.5)
    surface = base + light + 9 * _smooth_noise(rng, size, size / 10) + 6 * _smooth_noise(rng, size, 1.2)
    return surface + rng.normal(0, 4, (size, size))


def _add_look_alikes(rng: np.random.Generator, surface: np.ndarray) -> None:
    """Harmless marks with defect-like brightness but not defect-like shape."""
    size = surface.shape[0]
    yy, xx = np.mgrid[0:size, 0:size]
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.uniform(0, size, 2)
        radius = rng.uniform(size * 0.04, size * 0.12)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
        surface += rng.choice([-1, 1]) * rng.uniform(18, 35) * blob
    for _ in range(rng.integers(0, 6)):
        y, x = rng.integers(0, size, 2)
        cv2.circle(surface, (int(x), int(y)), 1, float(surface[y, x] + rng.uniform(25, 45)), -1)
    if rng.random() < 0.5:
        groove = np.zeros_like(surface)
        y0 = rng.uniform(0, size)
        cv2.line(groove, (0, int(y0)), (size - 1, int(y0 + rng.uniform(-size / 4, size / 4))), 1.0, 1)
        surface -= rng.uniform(10, 20) * cv2.GaussianBlur(groove, (0, 0), 1.5) * 3


def _crack(rng, surface, mask):
    size = surface.shape[0]
    points = [rng.uniform(size * 0.15, size * 0.85, 2)]
    heading = rng.uniform(0, 2 * np.pi)
    for _ in range(rng.integers(5, 11)):
        heading += rng.normal(0, 0.6)
        step = rng.uniform(size * 0.04, size * 0.1)
        points.append(np.clip(points[-1] + step * np.array([np.cos(heading), np.sin(heading)]), 0, size - 1))
    polyline = np.round(np.array(points)).astype(np.int32).reshape(-1, 1, 2)
    thickness = int(rng.integers(1, 3))
    cv2.polylines(mask, [polyline], False, 255, thickness)
    surface[mask > 0] -= rng.uniform(22, 45)


def _blowhole(rng, surface, mask):
    size = surface.shape[0]
    for _ in range(rng.integers(1, 3)):
        center = tuple(int(v) for v in rng.integers(int(size * 0.1), int(size * 0.9), 2))
        radius = int(rng.integers(max(2, size // 40), max(4, size // 14)))
        hole = np.zeros_like(mask)
        cv2.circle(hole, center, radius, 255, -1)
        rim = np.zeros_like(mask)
        cv2.circle(rim, center, radius + 1, 255, 2)
        surface[rim > 0] += rng.uniform(15, 30)
        surface[hole > 0] = surface[hole > 0] * 0.35 + rng.uniform(20, 50)
        mask |= hole


def _break(rng, surface, mask):
    size = surface.shape[0]
    side = rng.integers(0, 4)
    depth = rng.uniform(size * 0.08, size * 0.25)
    start, stop = sorted(rng.uniform(0, size, 2))
    stop = max(stop, start + size * 0.2)
    ts = np.linspace(start, stop, 8)
    inner = [(t, depth * rng.uniform(0.5, 1.0)) for t in ts]
    edge = [(stop, 0.0)] + [(start, 0.0)]
    along_depth = np.array(inner + edge, dtype=np.float32)
    if side == 0:
        pts = along_depth
    elif side == 1:
        pts = np.stack([along_depth[:, 0], size - 1 - along_depth[:, 1]], 1)
    elif side == 2:
        pts = along_depth[:, ::-1]
    else:
        pts = np.stack([size - 1 - along_depth[:, 1], along_depth[:, 0]], 1)
    region = np.zeros_like(mask)
    cv2.fillPoly(region, [np.round(pts).astype(np.int32)], 255)
    surface[region > 0] = rng.uniform(15, 45) + rng.normal(0, 5, int((region > 0).sum()))
    mask |= region


def _fray(rng, surface, mask):
    size = surface.shape[0]
    width = rng.uniform(size * 0.04, size * 0.1)
    teeth = np.abs(np.cumsum(rng.normal(0, size * 0.015, size))) + width * rng.uniform(0.3, 1.0, size)
    teeth = np.clip(teeth, 1, size * 0.2)
    region = (np.arange(size)[:, None] < teeth[None, :]).astype(np.uint8) * 255
    region = np.rot90(region, int(rng.integers(0, 4))).copy()
    noise = rng.normal(0, 22, surface.shape)
    surface[region > 0] += noise[region > 0] + rng.choice([-1, 1]) * rng.uniform(5, 15)
    mask |= region


def _uneven(rng, surface, mask):
    size = surface.shape[0]
    region = np.zeros_like(mask)
    center = tuple(int(v) for v in rng.integers(int(size * 0.2), int(size * 0.8), 2))
    axes = tuple(int(v) for v in rng.integers(size // 10, size // 4, 2))
    cv2.ellipse(region, center, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = rng.uniform(3, 6)
    ripple = np.sin((xx * np.cos(period) + yy * np.sin(period)) * 2 * np.pi / period)
    inside = region > 0
    mean = surface[inside].mean()
    surface[inside] = mean + 0.4 * (surface[inside] - mean) + rng.uniform(8, 14) * ripple[inside]
    mask |= region


_DRAW = {"crack": _crack, "blowhole": _blowhole, "break": _break, "fray": _fray, "uneven": _uneven}


def make_tile(seed: int, index: int, size: int, free_fraction: float) -> Tile:
    """Generate tile ``index`` of the set with this ``seed``."""
    rng = np.random.default_rng([seed, index])
    surface = _surface(rng, size)
    _add_look_alikes(rng, surface)
    mask = np.zeros((size, size), np.uint8)
    if rng.random() < free_fraction:
        defect_class = FREE
    else:
        defect_class = DEFECT_KINDS[int(rng.integers(len(DEFECT_KINDS)))]
        _DRAW[defect_class](rng, surface, mask)
    image = np.clip(cv2.GaussianBlur(surface.astype(np.float32), (0, 0), 0.6), 0, 255).round().astype(np.uint8)
    return Tile(image, mask, defect_class)


MAX_SHIFT = 2


def expose(tile: Tile, seed: int, obj: int, exposure: int) -> Tile:
    """Another photograph of ``tile`` (object ``obj``): exposure 0 is the tile itself; later ones
    scale and offset its brightness, add fresh noise and shift it (mask alike) by up to 2 pixels."""
    if exposure == 0:
        return tile
    rng = np.random.default_rng([seed, obj, exposure, 1])
    gain, offset = rng.uniform(0.75, 1.3), rng.uniform(-20, 20)
    dx, dy = (int(v) for v in rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, 2))
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    size = tile.image.shape[::-1]
    moved = cv2.warpAffine(tile.image.astype(np.float32), shift, size, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101)
    mask = cv2.warpAffine(tile.mask, shift, size, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101)
    image = np.clip(moved * gain + offset + rng.normal(0, 2, moved.shape), 0, 255).round().astype(np.uint8)
    return Tile(image, mask, tile.defect_class)


def make_image(params: SyntheticParams, index: int) -> tuple[Tile, int]:
    """Image ``index`` of the synthetic set and the object it shows."""
    obj, exposure = divmod(index, params.exposures)
    tile = make_tile(params.seed, obj, params.tile_size, params.free_fraction)
    return expose(tile, params.seed, obj, exposure), obj


def write_tiles(folder: Path, params: SyntheticParams) -> list[Pair]:
    """Write ``params.count`` images as PNG pairs under ``folder`` and list them, each with its object's group."""
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    pairs = []
    for index in range(params.count):
        tile, obj = make_image(params, index)
        name = f"tile_{index:05d}"
        image_path, mask_path = folder / "images" / f"{name}.png", folder / "masks" / f"{name}.png"
        Image.fromarray(tile.image).save(image_path)
        Image.fromarray(tile.mask).save(mask_path)
        pairs.append(Pair(name, image_path, mask_path, tile.defect_class, group=f"object_{obj:05d}"))
    return pairs
