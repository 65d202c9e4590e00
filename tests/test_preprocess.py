"""Resizing and mask binarization, and the stored arrays."""

import numpy as np
import pandas as pd
import pytest

from conftest import make_plain, params_with, write_png
from defectseg.data.dataset import load_split
from defectseg.data.prepare import prepare_dataset
from defectseg.data.preprocess import binarize_mask, preprocess, resize_mask, shard_arrays, shard_name
from defectseg.errors import DataError


def test_mask_threshold_splits_0_1_128_255():
    mask = np.array([[0, 1, 128, 255]], np.uint8)
    assert binarize_mask(mask, 127).tolist() == [[0, 0, 1, 1]]
    assert binarize_mask(mask, 0).tolist() == [[0, 1, 1, 1]]


def test_one_pixel_crack_survives_halving():
    crack = np.zeros((64, 64), np.uint8)
    crack[:, 31] = 1
    small = resize_mask(crack, 32, 32, coverage=0.25)
    assert small[:, 15].all() and small.sum() == 32


def test_coverage_keeps_masks_from_growing():
    block = np.zeros((64, 64), np.uint8)
    block[16:48, 16:48] = 1
    small = resize_mask(block, 32, 32, coverage=0.25)
    assert small.sum() == 16 * 16


def test_preprocess_writes_every_pair_as_uint8_arrays_read_back_in_manifest_order(tmp_path):
    source = tmp_path / "src"
    for i in range(12):
        image = np.full((60, 80), 100, np.uint8)
        mask = np.zeros((60, 80), np.uint8)
        mask[10:30, 10:30] = [0, 1, 128, 255][i % 4]
        write_png(source / "images" / f"p{i}.png", image)
        write_png(source / "masks" / f"p{i}.png", mask)
    params = params_with(**{"data.source": str(source), "preprocess.image_size": [32, 48], "train.augment.rotate90": 0.0})
    prepare_dataset(params.data, 1, tmp_path / "prepared", tmp_path / "cache")
    info = preprocess(tmp_path / "prepared" / "manifest.csv", params.preprocess, tmp_path / "pre")
    pairs = load_split(tmp_path / "pre")
    assert pairs.images.dtype == np.uint8 and pairs.images.shape == (12, 32, 48)
    assert set(np.unique(pairs.masks)) <= {0, 1}
    assert pairs.ids.tolist() == pd.read_csv(tmp_path / "prepared" / "manifest.csv", dtype={"id": str})["id"].tolist()
    for mask, image_id in zip(pairs.masks, pairs.ids):
        value = [0, 1, 128, 255][int(image_id[1:]) % 4]
        # rows 10-30 of 60 -> 5.33-16 of 32: rows 5..15 (row 5 is 2/3 covered) = 11 rows;
        # columns 10-30 of 80 -> 6-18 of 48 = 12 columns
        assert mask.sum() == (11 * 12 if value > 127 else 0)
    assert info["count"] == 12 and info["height"] == 32


@pytest.mark.parametrize("damage", ["truncated", "zeroed"])
def test_damaged_preprocessed_pairs_are_one_error_naming_the_file_and_what_to_run(tmp_path, damage):
    params = params_with(**{"data.source": str(make_plain(tmp_path / "src", n=8)), "preprocess.image_size": 32})
    prepare_dataset(params.data, 1, tmp_path / "prepared", tmp_path / "cache")
    preprocess(tmp_path / "prepared" / "manifest.csv", params.preprocess, tmp_path / "pre")
    shard = sorted((tmp_path / "pre").glob("pairs-*.npz"))[0]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2] if damage == "truncated" else data[:200] + bytes(len(data) - 400) + data[-200:])
    folder = tmp_path / "pre"
    with pytest.raises(DataError, match=rf"^{shard}: damaged preprocessed shard \(.+\): run `dvc repro -f preprocess` or `dvc checkout {folder}`$"):
        load_split(folder)


def test_missing_preprocessed_pairs_are_one_error_saying_what_to_run(tmp_path):
    with pytest.raises(DataError, match=r"no preprocessed pairs: run `dvc repro preprocess` \(or `dvc pull`\)$"):
        load_split(tmp_path / "pre")


def test_each_pair_lives_in_the_shard_its_ids_hash_names_so_a_relabel_rewrites_one_shard(tmp_path):
    params = params_with(**{"data.source": str(make_plain(tmp_path / "src", n=8)), "preprocess.image_size": 32})
    prepare_dataset(params.data, 1, tmp_path / "prepared", tmp_path / "cache")
    manifest = tmp_path / "prepared" / "manifest.csv"
    preprocess(manifest, params.preprocess, tmp_path / "pre")
    before = {p.name: p.read_bytes() for p in (tmp_path / "pre").glob("pairs-*.npz")}
    assert set(before) == {shard_name(f"img{i}") for i in range(8)}
    relabelled = np.zeros((48, 48), np.uint8)
    relabelled[0:30, 0:30] = 255
    write_png(tmp_path / "prepared" / "masks" / "img3.png", relabelled)
    preprocess(manifest, params.preprocess, tmp_path / "again")
    after = {p.name: p.read_bytes() for p in (tmp_path / "again").glob("pairs-*.npz")}
    assert {name for name in before if before[name] != after[name]} == {shard_name("img3")}


def test_pairs_of_several_sizes_are_kept_at_their_sizes(tmp_path):
    images = [np.full((20 + i, 30), i, np.uint8) for i in range(3)]
    masks = [np.zeros((20 + i, 30), np.uint8) for i in range(3)]
    np.savez(tmp_path / "pairs-00.npz", **shard_arrays(["a", "b", "c"], ["free"] * 3, images, masks))
    pairs = load_split(tmp_path)
    assert pairs.images.dtype == object and [image.shape for image in pairs.images] == [(20, 30), (21, 30), (22, 30)]
    assert pairs.select(np.array([2, 0])).ids.tolist() == ["c", "a"] and pairs.select(np.array([2, 0])).images[0][0, 0] == 2
