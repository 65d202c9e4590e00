"""Decode and check image and mask files, with errors that name the file."""

import io
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from defectseg.errors import DataError, ImageTooLargeError

# Every decode in this project goes through _open, which refuses an image over its
# max_pixels before decoding it: that replaces PIL's fixed decompression-bomb guard,
# so the limit is one configurable number (data.max_pixels) with one message.
Image.MAX_IMAGE_PIXELS = None
DEFAULT_MAX_PIXELS = 10**8

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
MASK_MODES = frozenset({"L", "1"})


def _open(path: Path, max_pixels: int, source: BinaryIO | None = None) -> Image.Image:
    """Open ``path`` (or the bytes of ``source``, named ``path`` in errors) lazily, reading its
    header only, and refuse it before decoding if it is too large."""
    try:
        image = Image.open(path if source is None else source)
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except UnidentifiedImageError:
        raise DataError(path, "not a readable image (empty, corrupt or unknown format)") from None
    except OSError as exc:
        raise DataError(path, f"image data is truncated or corrupt ({exc})") from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise ImageTooLargeError(path, f"image is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,} (data.max_pixels)")
    return image


def _decode(image: Image.Image, path: Path) -> None:
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"image data is truncated or corrupt ({exc})") from None


def read_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Return the image at ``path`` as a 2-D uint8 grayscale array.

    8-bit gray is read as is; 16-bit gray is scaled to 8 bits; colour is converted
    to luminance.
    """
    path = Path(path)
    with _open(path, max_pixels) as image:
        return _gray(image, path)


def read_image_bytes(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """``read_image`` for an image's bytes (an upload), its errors naming ``name``."""
    with _open(Path(name), max_pixels, io.BytesIO(data)) as image:
        return _gray(image, Path(name))


def _gray(image: Image.Image, path: Path) -> np.ndarray:
    _decode(image, path)
    if image.mode == "L":
        return np.asarray(image, dtype=np.uint8)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(image, dtype=np.int64)
        top = 65535 if image.mode.startswith("I;16") else max(int(wide.max()), 1)
        return np.clip(wide * 255 // top, 0, 255).astype(np.uint8)
    return np.asarray(image.convert("L"), dtype=np.uint8)


def read_mask(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Return the mask at ``path`` as a 2-D uint8 array (0 = background, >0 = defect).

    Only 8-bit single-channel (mode ``L``) and 1-bit masks are accepted: a colour,
    alpha or 16-bit mask is ambiguous and is refused rather than guessed at.
    """
    path = Path(path)
    with _open(path, max_pixels) as image:
        if image.mode not in MASK_MODES:
            raise DataError(path, f"mask must be 8-bit single-channel (mode L), got mode {image.mode}")
        _decode(image, path)
        mask = np.asarray(image, dtype=np.uint8)
    if image.mode == "1":
        mask = mask * np.uint8(255)
    return mask
