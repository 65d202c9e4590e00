"""Decoding images and masks: what is accepted, converted, or refused with the file named."""

import numpy as np
import pytest
from PIL import Image

from conftest import gray, write_png
from defectseg.data.images import read_image, read_mask
from defectseg.errors import DataError


def test_truncated_jpeg_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(gray(64, 64)).save(path, quality=95)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match="cut.jpg: .*(truncated|corrupt|readable)"):
        read_image(path)


def test_zero_byte_png_is_refused(tmp_path):
    path = tmp_path / "empty.png"
    path.touch()
    with pytest.raises(DataError, match="empty.png: not a readable image"):
        read_image(path)


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_colour_mask_is_refused(tmp_path, mode):
    path = tmp_path / "mask.png"
    Image.new(mode, (8, 8)).save(path)
    with pytest.raises(DataError, match=f"mask must be 8-bit single-channel .*got mode {mode}"):
        read_mask(path)


def test_16_bit_mask_is_refused(tmp_path):
    path = write_png(tmp_path / "mask16.png", np.full((8, 8), 1000, np.uint16))
    with pytest.raises(DataError, match="mode I;16"):
        read_mask(path)


def test_16_bit_image_is_scaled_to_8_bits(tmp_path):
    path = write_png(tmp_path / "img16.png", np.array([[0, 65535]], np.uint16))
    assert read_image(path).tolist() == [[0, 255]]


def test_rgb_image_is_converted_to_gray(tmp_path):
    path = tmp_path / "rgb.png"
    Image.new("RGB", (4, 3), (200, 200, 200)).save(path)
    image = read_image(path)
    assert image.shape == (3, 4) and (image == 200).all()


def test_one_bit_mask_reads_as_0_and_255(tmp_path):
    path = tmp_path / "bits.png"
    Image.fromarray(np.array([[0, 1]], bool)).save(path)
    assert read_mask(path).tolist() == [[0, 255]]


def test_image_over_max_pixels_is_refused_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    Image.new("1", (8000, 8000)).save(path)
    with pytest.raises(DataError, match=r"big.png: image is 8000x8000 = 64,000,000 pixels, over the limit of 50,000,000"):
        read_image(path, max_pixels=50_000_000)


def test_20000_square_image_is_refused_without_decoding(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("1", (20000, 20000)).save(path)
    with pytest.raises(DataError, match=r"huge.png: image is 20000x20000 = 400,000,000 pixels, over the limit"):
        read_mask(path)
