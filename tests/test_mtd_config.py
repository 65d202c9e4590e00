"""configs/mtd.yaml: it validates against params.yaml and trains on the real Magnetic Tile copy."""

from pathlib import Path

import pytest
import yaml

from conftest import MTD, REPO, default_params_dict
from defectseg.params import apply_overrides, parse_params
from defectseg.prepare import prepare_dataset
from defectseg.preprocess import preprocess
from defectseg.saved_model import load_model
from defectseg.train_run import train_run

CONFIG = REPO / "configs" / "mtd.yaml"


def mtd_params(**extra):
    overrides = {**yaml.safe_load(CONFIG.read_text()), **extra}
    return parse_params(apply_overrides(default_params_dict(), overrides), str(CONFIG))


def test_mtd_config_sets_only_known_keys_to_valid_values():
    params = mtd_params()
    assert params.preprocess.height_width == (224, 224)
    assert params.train.downscale == 4 and params.evaluate.min_region_share > 0


@pytest.mark.skipif(not MTD.is_dir(), reason="Magnetic Tile copy not at ../shared/datasets/magnetic-tile")
def test_mtd_config_trains_on_the_real_set(tmp_path: Path):
    params = mtd_params(**{"data.source": str(MTD), "train.epochs": 2, "train.device": "cpu"})
    prepare_dataset(params.data, tmp_path / "prepared", tmp_path / "cache")
    preprocess(tmp_path / "prepared" / "manifest.csv", params.preprocess, tmp_path / "pre")
    summary = train_run(params, "dicebce", 0, tmp_path / "pre", tmp_path / "model", tmp_path / "live")
    assert summary["epochs"] == 2 and 0 < summary["best_val_iou"] <= 1
    saved = load_model(tmp_path / "model")
    assert saved.metadata["input_size"] == [224, 224]
    assert saved.metadata["architecture"]["downscale"] == 4
