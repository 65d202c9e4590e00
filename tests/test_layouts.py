"""Layout detection and pairing, on real files in each of the three layouts."""

from pathlib import Path

import numpy as np
import pytest

from conftest import MTD, gray, make_plain, square_mask, write_png
from defectseg.data.layouts import find_pairs
from defectseg.errors import DataError


def test_plain_layout_pairs_by_stem_and_skips_non_images(plain_source):
    (plain_source / "images" / "notes.txt").write_text("not an image")
    found = find_pairs(plain_source)
    assert found.layout == "plain"
    assert sorted(p.id for p in found.pairs) == ["img0", "img1", "img2", "img3"]
    assert [p.name for p in found.skipped] == ["notes.txt"]


def test_seed_layout_under_train_and_val_folders(tmp_path):
    for part, name in [("train_1", "a.png"), ("val_1", "b.png")]:
        write_png(tmp_path / part / "srcImg" / name, gray())
        write_png(tmp_path / part / "label" / name, square_mask())
    found = find_pairs(tmp_path)
    assert found.layout == "seed"
    assert sorted(p.id for p in found.pairs) == ["a", "b"]


def test_mtd_layout_takes_class_from_folder(tmp_path):
    for cls, stem in [("Crack", "exp1_num_1"), ("Free", "exp1_num_2")]:
        write_png(tmp_path / "wrapper" / f"MT_{cls}" / "Imgs" / f"{stem}.png", np.zeros((48, 48), np.uint8))
        (tmp_path / "wrapper" / f"MT_{cls}" / "Imgs" / f"{stem}.jpg").write_bytes(b"")
    found = find_pairs(tmp_path)
    assert found.layout == "mtd"
    assert {(p.id, p.defect_class) for p in found.pairs} == {("exp1_num_1", "crack"), ("exp1_num_2", "free")}


def test_missing_mask_names_the_image(plain_source):
    (plain_source / "masks" / "img2.png").unlink()
    with pytest.raises(DataError, match=r"img2.png: mask missing"):
        find_pairs(plain_source)


def test_orphan_mask_is_an_error(plain_source):
    write_png(plain_source / "masks" / "ghost.png", square_mask())
    with pytest.raises(DataError, match=r"ghost.png: mask has no image"):
        find_pairs(plain_source)


def test_duplicate_stems_are_an_error(plain_source):
    write_png(plain_source / "images" / "img1.jpg", gray())
    with pytest.raises(DataError, match=r"duplicate id 'img1'"):
        find_pairs(plain_source)


def test_symlink_outside_the_source_is_refused(tmp_path):
    source = make_plain(tmp_path / "src")
    outside = write_png(tmp_path / "elsewhere.png", gray())
    (source / "images" / "img9.png").symlink_to(outside)
    with pytest.raises(DataError, match=r"img9.png: symbolic link points outside the source folder"):
        find_pairs(source)


def test_unknown_layout_is_named(tmp_path):
    write_png(tmp_path / "pictures" / "a.png", gray())
    with pytest.raises(DataError, match="unknown layout"):
        find_pairs(tmp_path)


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(DataError, match="source folder is empty"):
        find_pairs(tmp_path)


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        find_pairs(tmp_path / "nowhere")


@pytest.mark.skipif(not MTD.is_dir(), reason="Magnetic Tile copy not at ../shared/datasets/magnetic-tile")
def test_real_mtd_copy_is_found_with_its_classes():
    found = find_pairs(MTD)
    assert found.layout == "mtd"
    counts = {}
    for pair in found.pairs:
        counts[pair.defect_class] = counts.get(pair.defect_class, 0) + 1
    assert counts == {"blowhole": 79, "break": 61, "crack": 45, "fray": 25, "uneven": 78, "free": 791}


@pytest.mark.skipif(not MTD.is_dir(), reason="Magnetic Tile copy not at ../shared/datasets/magnetic-tile")
def test_the_committed_list_of_mtd_pairs_is_the_copy_the_headline_measured():
    listed = (Path(__file__).parents[1] / "docs" / "mtd-pairs.txt").read_text().splitlines()
    assert listed == sorted(pair.id for pair in find_pairs(MTD).pairs) and len(listed) == 1079
