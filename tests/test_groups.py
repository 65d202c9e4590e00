"""Groups (one physical object each): where they come from, near-duplicates joining them, and whole groups per role."""

import numpy as np
import pandas as pd
import pytest

from conftest import params_with, write_png
from defectseg.config.data import SyntheticParams
from defectseg.data.groups import join_groups, mtd_frame_groups
from defectseg.data.prepare import prepare_dataset, refuse_divided_groups
from defectseg.data.synthetic import make_image, make_tile
from defectseg.errors import DataError


def run_prepare(tmp_path, source, **overrides):
    params = params_with(**{"data.source": str(source), **overrides})
    return prepare_dataset(params.data, params.compare.fold_count, tmp_path / "out", tmp_path / "cache")


def manifest_of(tmp_path) -> pd.DataFrame:
    return pd.read_csv(tmp_path / "out" / "manifest.csv").set_index("id")


def re_exposed(image: np.ndarray, gain: float, offset: float) -> np.ndarray:
    return np.clip(image.astype(float) * gain + offset, 0, 255).round().astype(np.uint8)


def same_mask_on_another_surface(defective, surface_index: int) -> np.ndarray:
    """Another object's surface with ``defective``'s defect drawn into it at the same place."""
    surface = make_tile(0, surface_index, 128, 1.0).image.astype(float)
    surface[defective.mask > 0] -= 35
    return np.clip(surface, 0, 255).astype(np.uint8)


@pytest.fixture
def planted(tmp_path):
    """Twelve synthetic objects in a plain folder; objects 0 and 1 photographed again under other
    exposures; object 2's crack drawn again, at the same place, on object 3's surface."""
    root = tmp_path / "planted"
    tiles = [make_tile(0, i, 128, 0.0 if i < 6 else 1.0) for i in range(12)]
    for i, tile in enumerate(tiles):
        write_png(root / "images" / f"obj{i:02d}.png", tile.image)
        write_png(root / "masks" / f"obj{i:02d}.png", tile.mask)
    for i, (gain, offset) in enumerate([(0.7, 30), (1.3, -25)]):
        for obj in (0, 1):
            write_png(root / "images" / f"obj{obj:02d}_again{i}.png", re_exposed(tiles[obj].image, gain, offset))
            write_png(root / "masks" / f"obj{obj:02d}_again{i}.png", tiles[obj].mask)
    write_png(root / "images" / "twin.png", same_mask_on_another_surface(tiles[2], 40))
    write_png(root / "masks" / "twin.png", tiles[2].mask)
    return root


def test_re_exposed_photographs_join_their_object_and_distinct_objects_stay_apart(tmp_path, planted):
    summary = run_prepare(tmp_path, planted)
    group = manifest_of(tmp_path)["group"]
    assert group["obj00_again0"] == group["obj00_again1"] == group["obj00"]
    assert group["obj01_again0"] == group["obj01_again1"] == group["obj01"] != group["obj00"]
    assert group["twin"] != group["obj02"], "the same mask on another surface is another object"
    assert group.drop(["obj00_again0", "obj00_again1", "obj01_again0", "obj01_again1"]).is_unique
    assert summary["groups"] == 13 and summary["group_source"] == "near-duplicates only"
    assert summary["leakage_audit"]["near_duplicate_pairs"] == 6


def test_a_groups_file_beside_the_data_names_the_groups(tmp_path, planted):
    (planted / "groups.csv").write_text("id,group\nobj02,line-a\ntwin,line-a\n")
    run_prepare(tmp_path, planted)
    group = manifest_of(tmp_path)["group"]
    assert group["obj02"] == group["twin"] == "line-a"
    assert group["obj00_again0"] == group["obj00"], "near-duplicates still join the ids the file leaves out"


def test_a_groups_file_naming_an_unknown_image_is_refused_naming_the_file_and_line(tmp_path, planted):
    (planted / "groups.csv").write_text("id,group\nobj02,a\nnot-there,b\n")
    with pytest.raises(DataError, match=r"groups\.csv: line 3: id 'not-there' is not an image of the source"):
        run_prepare(tmp_path, planted)
    assert not (tmp_path / "out").exists()


def test_no_fold_tests_a_group_that_another_role_holds(tmp_path, planted):
    summary = run_prepare(tmp_path, planted, **{"compare.folds": [0, 1, 2]})
    manifest = manifest_of(tmp_path)
    for fold in ("fold0", "fold1", "fold2"):
        assert (manifest.groupby("group")[fold].nunique() == 1).all()
    assert [f["near_duplicates_across_roles"] for f in summary["leakage_audit"]["per_fold"]] == [0, 0, 0]
    closest = summary["leakage_audit"]["per_fold"][0]["closest"]
    assert len(closest) == 10 and all(pair["a_role"] != pair["b_role"] for pair in closest)
    assert closest[0]["similarity"] < 0.95 and closest == sorted(closest, key=lambda pair: -pair["similarity"])


def test_with_joining_off_the_audit_shows_the_re_exposed_copies_lying_across_roles(tmp_path, planted):
    summary = run_prepare(tmp_path, planted, **{"compare.folds": [0, 1, 2], "data.groups.near_duplicate_similarity": 1.01})
    assert summary["groups"] == 17 and summary["leakage_audit"]["near_duplicate_pairs"] == 0
    closest = [pair for fold in summary["leakage_audit"]["per_fold"] for pair in fold["closest"] if pair["similarity"] > 0.95]
    assert closest and all(pair["a"].startswith(pair["b"][:5]) or pair["b"].startswith(pair["a"][:5]) for pair in closest)


def test_a_divided_group_is_refused_in_one_line_naming_it():
    with pytest.raises(DataError, match=r"group 'tile-7' crosses test and train in fold 1 \(1 group\(s\) divided\)"):
        refuse_divided_groups(["tile-7", "tile-7", "tile-8"], ["train", "test", "val"], 1, "data/src")


def test_the_synthetic_source_photographs_each_object_several_times():
    params = SyntheticParams(count=9, tile_size=64, free_fraction=0.3, exposures=3, seed=0)
    images = [make_image(params, i) for i in range(9)]
    assert [obj for _, obj in images] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    first, second = images[0][0], images[1][0]
    assert first.defect_class == second.defect_class and not np.array_equal(first.image, second.image)
    assert abs(float(first.image.mean()) - float(second.image.mean())) > 1, "another exposure"
    single = SyntheticParams(count=6, tile_size=64, free_fraction=0.3, exposures=1, seed=0)
    assert np.array_equal(make_image(single, 2)[0].image, make_tile(0, 2, 64, 0.3).image)


def test_the_default_pipeline_data_keeps_each_synthetic_object_whole(tmp_path):
    summary = run_prepare(tmp_path, "synthetic", **{"data.synthetic.count": 60, "compare.folds": [0, 1, 2]})
    manifest = manifest_of(tmp_path)
    assert summary["groups"] == 20 and summary["group_source"] == "synthetic objects"
    assert (manifest.groupby("group").size() == 3).all()
    for fold in ("fold0", "fold1", "fold2"):
        assert (manifest.groupby("group")[fold].nunique() == 1).all()


def test_mtd_frames_close_together_form_one_group_across_class_folders():
    ids = ["exp1_num_100", "exp2_num_130", "exp3_num_520", "exp1_num_1000", "exp6_num_1399", "other"]
    assert mtd_frame_groups(ids, 400) == {
        "exp1_num_100": "frames_100", "exp2_num_130": "frames_100", "exp3_num_520": "frames_100",
        "exp1_num_1000": "frames_1000", "exp6_num_1399": "frames_1000",
    }
    assert len(set(mtd_frame_groups(ids, 0).values())) == 5


def test_joined_groups_take_their_smallest_label_whatever_the_join_order():
    ids = ["a", "b", "c", "d"]
    labels = ["g2", None, "g1", None]
    assert join_groups(ids, labels, [(0, 1), (1, 2)]) == ["g1", "g1", "g1", "d"]
    assert join_groups(ids, labels, [(2, 1), (1, 0)]) == ["g1", "g1", "g1", "d"]
