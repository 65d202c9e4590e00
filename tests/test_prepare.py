"""The prepare stage as a function: checks, split, manifest, and all-or-nothing output."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from conftest import MTD, gray, make_plain, params_with, write_png
from defectseg.config.data import SplitParams
from defectseg.data.manifest import COLUMNS as MANIFEST_COLUMNS
from defectseg.data.manifest import read_manifest
from defectseg.data.prepare import prepare_dataset
from defectseg.data.splits import assign_folds, assign_splits, groups_across_roles
from defectseg.data.synthetic import make_tile
from defectseg.errors import DataError


def run_prepare(tmp_path, source, **overrides):
    params = params_with(**{"data.source": str(source), **overrides})
    return prepare_dataset(params.data, params.compare.fold_count, tmp_path / "out", tmp_path / "cache")


@pytest.fixture
def eight_pairs(tmp_path):
    """Four pairs per class: the fewest at which the default fractions leave no split empty."""
    return make_plain(tmp_path / "plain8", n=8)


def test_plain_folder_gives_manifest_and_summary(tmp_path, eight_pairs):
    summary = run_prepare(tmp_path, eight_pairs)
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv")
    assert list(manifest.columns) == [*MANIFEST_COLUMNS, "fold0"]
    assert manifest["group"].tolist() == manifest["id"].tolist(), "distinct random images: each its own group"
    assert sorted(manifest["defect_class"]) == ["defect"] * 4 + ["free"] * 4
    assert manifest.loc[manifest["id"] == "img1", "defect_fraction"].item() == pytest.approx(100 / 48**2, abs=1e-6)
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == summary
    assert summary["pairs"] == 8 and summary["folds"] == 1 and summary["per_fold"] == [{"train": 4, "val": 2, "test": 2}]


def test_prepared_data_set_holds_every_pair_byte_for_byte_under_relative_paths(tmp_path, eight_pairs):
    run_prepare(tmp_path, eight_pairs)
    out = tmp_path / "out"
    raw = pd.read_csv(out / "manifest.csv", dtype={"id": str})
    assert list(raw["image"]) == [f"images/img{i}.png" for i in range(8)]
    assert list(raw["mask"]) == [f"masks/img{i}.png" for i in range(8)]
    for i in range(8):
        assert (out / "images" / f"img{i}.png").read_bytes() == (eight_pairs / "images" / f"img{i}.png").read_bytes()
        assert (out / "masks" / f"img{i}.png").read_bytes() == (eight_pairs / "masks" / f"img{i}.png").read_bytes()
    moved = tmp_path / "elsewhere" / "prepared"
    moved.parent.mkdir()
    out.rename(moved)
    resolved = read_manifest(moved / "manifest.csv")
    assert resolved.loc["img3", "mask"] == str(moved / "masks" / "img3.png")
    assert str(tmp_path / "plain8") not in (moved / "manifest.csv").read_text() + (moved / "summary.json").read_text()


def test_damaged_manifest_is_one_line_naming_it_and_what_to_run(tmp_path, eight_pairs):
    run_prepare(tmp_path, eight_pairs)
    manifest = tmp_path / "out" / "manifest.csv"
    manifest.write_text("id,defect_class,image\nx,free,images/x.png\n")
    with pytest.raises(DataError, match=r"manifest.csv: damaged manifest: no column .*dvc repro -f prepare"):
        read_manifest(manifest)


def test_size_mismatch_names_both_files(tmp_path, plain_source):
    write_png(plain_source / "masks" / "img0.png", np.zeros((40, 48), np.uint8))
    with pytest.raises(DataError, match=r"img0.png: mask is 48x40 but its image .*img0.png is 48x48"):
        run_prepare(tmp_path, plain_source)


def test_mask_with_only_255_is_refused(tmp_path, plain_source):
    write_png(plain_source / "masks" / "img0.png", np.full((48, 48), 255, np.uint8))
    with pytest.raises(DataError, match="mask marks every pixel as defect"):
        run_prepare(tmp_path, plain_source)


def test_image_below_min_side_is_refused(tmp_path, plain_source):
    write_png(plain_source / "images" / "img0.png", gray(8, 8))
    write_png(plain_source / "masks" / "img0.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match=r"img0.png: image is 8x8, smaller than data.min_side=32"):
        run_prepare(tmp_path, plain_source)


def test_failure_leaves_previous_output_untouched(tmp_path, eight_pairs):
    run_prepare(tmp_path, eight_pairs)
    before = (tmp_path / "out" / "manifest.csv").read_bytes()
    (eight_pairs / "images" / "img3.png").write_bytes(b"")
    with pytest.raises(DataError):
        run_prepare(tmp_path, eight_pairs)
    assert (tmp_path / "out" / "manifest.csv").read_bytes() == before
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


def test_failure_on_first_run_writes_nothing(tmp_path, plain_source):
    (plain_source / "masks" / "img3.png").unlink()
    with pytest.raises(DataError):
        run_prepare(tmp_path, plain_source)
    assert not (tmp_path / "out").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".out")]


def test_synthetic_source_is_deterministic_and_has_every_class(tmp_path):
    first = run_prepare(tmp_path / "a", "synthetic", **{"data.synthetic.count": 40})
    second = run_prepare(tmp_path / "b", "synthetic", **{"data.synthetic.count": 40})
    assert first == second
    assert set(first["per_class"]) == {"free", "crack", "blowhole", "break", "fray", "uneven"}
    a = (tmp_path / "a" / "out" / "images" / "tile_00007.png").read_bytes()
    assert a == (tmp_path / "b" / "out" / "images" / "tile_00007.png").read_bytes()


def test_synthetic_defects_are_not_a_brightness_threshold():
    tiles = [make_tile(0, i, 128, 0.0) for i in range(40)]
    best = 0.0
    for threshold in range(0, 256, 8):
        for dark in (True, False):
            inter = union = 0
            for tile in tiles:
                predicted = tile.image < threshold if dark else tile.image > threshold
                truth = tile.mask > 0
                inter += (predicted & truth).sum()
                union += (predicted | truth).sum()
            best = max(best, inter / union)
    assert best < 0.3, f"a global threshold reaches IoU {best:.2f}"


def test_split_is_stratified_by_class_cut_by_group_and_repeatable():
    ids = [f"id{i:03d}" for i in range(210)]
    classes = ["free"] * 105 + ["crack"] * 63 + ["break"] * 42
    groups = [f"g{i // 3}" for i in range(210)]
    params = SplitParams(train=0.7, val=0.15, test=0.15, seed=3)
    first = assign_splits(ids, classes, groups, params)
    assert first == assign_splits(ids, classes, groups, params)
    assert groups_across_roles(groups, first) == {}
    for cls, n in [("free", 105), ("crack", 63), ("break", 42)]:
        got = [s for s, c in zip(first, classes) if c == cls]
        assert abs(got.count("test") - n / 7) <= 3 and abs(got.count("val") - n / 7) <= 3
    assert first != assign_splits(ids, classes, groups, SplitParams(train=0.7, val=0.15, test=0.15, seed=4))


def test_split_does_not_depend_on_order_or_unrelated_params(tmp_path, eight_pairs):
    ids = [f"id{i}" for i in range(50)]
    classes = ["free", "crack"] * 25
    params = SplitParams(train=0.6, val=0.2, test=0.2, seed=0)
    forward = dict(zip(ids, assign_splits(ids, classes, ids, params)))
    backward = dict(zip(ids[::-1], assign_splits(ids[::-1], classes[::-1], ids[::-1], params)))
    assert forward == backward
    a = run_prepare(tmp_path / "a", eight_pairs, **{"data.min_side": 16})
    b = run_prepare(tmp_path / "b", eight_pairs, **{"data.min_side": 20, "preprocess.image_size": 64})
    manifest_a = pd.read_csv(tmp_path / "a" / "out" / "manifest.csv")
    manifest_b = pd.read_csv(tmp_path / "b" / "out" / "manifest.csv")
    assert a == b and manifest_a["fold0"].tolist() == manifest_b["fold0"].tolist()


@pytest.mark.skipif(not MTD.is_dir(), reason="Magnetic Tile copy not at ../shared/datasets/magnetic-tile")
def test_real_mtd_manifest_matches_its_readme_and_keeps_every_tile_whole(tmp_path):
    summary = run_prepare(tmp_path, MTD, **{"compare.folds": [0, 1, 2]})
    assert summary["pairs"] == 1079
    assert summary["per_class"] == {"blowhole": 79, "break": 61, "crack": 45, "fray": 25, "uneven": 78, "free": 791}
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv")
    folds = ["fold0", "fold1", "fold2"]
    tested = manifest.groupby("group")[folds].agg(lambda roles: set(roles)).map(len)
    assert (tested == 1).all().all(), "no group holds two roles in any fold"
    assert ((manifest[folds] == "test").sum(axis=1) == 1).all()
    crack = manifest.set_index("id")["group"]
    assert crack["exp4_num_85998"] == crack["exp4_num_88149"], "the recaptured crack of the data README joins its first session"
    assert crack["exp1_num_32128"] == crack["exp6_num_32235"] != crack["exp4_num_85998"]
    assert manifest.loc[manifest["defect_class"] == "crack", "group"].nunique() == 7, "the README's 7 cracked tiles"
    assert 120 <= summary["groups"] <= 150
    assert [fold["near_duplicates_across_roles"] for fold in summary["leakage_audit"]["per_fold"]] == [0, 0, 0]


def test_folds_test_every_pair_exactly_once_stratified_by_class_and_whole_groups():
    ids = [f"id{i:03d}" for i in range(210)]
    classes = ["free"] * 120 + ["crack"] * 60 + ["break"] * 30
    groups = [f"g{i // 3}" for i in range(210)]
    params = SplitParams(train=0.7, val=0.15, test=0.15, seed=3)
    roles = assign_folds(ids, classes, groups, 3, params)
    tested = [sum(fold[i] == "test" for fold in roles) for i in range(len(ids))]
    assert tested == [1] * len(ids)
    for fold in roles:
        assert groups_across_roles(groups, fold) == {}
        for cls, n in [("free", 120), ("crack", 60), ("break", 30)]:
            got = [role for role, c in zip(fold, classes) if c == cls]
            assert abs(got.count("test") - n / 3) <= 3
            assert abs(got.count("val") - (n - got.count("test")) / 6) <= 3
    assert roles == assign_folds(ids, classes, groups, 3, params)
    assert roles != assign_folds(ids, classes, groups, 3, SplitParams(train=0.7, val=0.15, test=0.15, seed=4))
    shuffled = dict(zip(ids[::-1], zip(*assign_folds(ids[::-1], classes[::-1], groups[::-1], 3, params))))
    assert shuffled == dict(zip(ids, zip(*roles)))


def test_prepare_writes_each_folds_roles_and_counts(tmp_path):
    summary = run_prepare(tmp_path, "synthetic", **{"data.synthetic.count": 60, "compare.folds": [0, 1, 2]})
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv")
    assert [c for c in manifest.columns if c.startswith("fold")] == ["fold0", "fold1", "fold2"]
    assert ((manifest[["fold0", "fold1", "fold2"]] == "test").sum(axis=1) == 1).all()
    assert summary["folds"] == 3 and sum(f["test"] for f in summary["per_fold"]) == 60


def test_a_fold_left_without_val_is_refused_by_name(tmp_path, eight_pairs):
    with pytest.raises(DataError, match=r"8 pairs in fold 0 of 4 leave val empty \(train 6, val 0, test 2\)"):
        run_prepare(tmp_path, eight_pairs, **{"compare.folds": [0, 1, 2, 3], "data.split.val": 0.0, "data.split.train": 0.85})
