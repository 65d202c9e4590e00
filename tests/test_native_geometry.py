"""``preprocess.geometry: scale``: tiles keep their aspect ratio (and, at scale 1, their pixels),
train on crops, and are validated, evaluated and predicted whole at their own sizes."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import params_with, write_png

from defectseg.config.runs import Run
from defectseg.data.dataset import load_split
from defectseg.data.images import read_mask
from defectseg.data.prepare import prepare_dataset
from defectseg.data.preprocess import preprocess
from defectseg.data.synthetic import make_tile
from defectseg.errors import ParamsError
from defectseg.evaluation.evaluate import evaluate_run
from defectseg.evaluation.predict import predict
from defectseg.models.inference import model_input
from defectseg.models.saved_model import load_model
from defectseg.training.train_run import train_run

# heights and widths no model stride divides, so whole-tile inference must pad
SIZES = [(45, 58), (64, 37), (52, 52), (39, 61)]
NATIVE = {
    "preprocess.geometry": "scale", "preprocess.scale": 1.0, "train.augment.crop_size": 32, "models.unet.base_width": 4,
    "models.unet.depth": 2, "train.epochs": 2, "train.batch_size": 4, "train.device": "cpu", "evaluate.device": "cpu",
    "evaluate.worst_overlays": 1,
}  # fmt: skip


@pytest.fixture(scope="module")
def tiles(tmp_path_factory) -> Path:
    """24 plain pairs of four shapes, cut from synthetic 64-px tiles."""
    root = tmp_path_factory.mktemp("tiles")
    for i in range(24):
        tile = make_tile(5, i, 64, 0.3)
        height, width = SIZES[i % len(SIZES)]
        write_png(root / "images" / f"t{i:02d}.png", tile.image[:height, :width])
        write_png(root / "masks" / f"t{i:02d}.png", (tile.mask[:height, :width] > 0).astype(np.uint8) * 255)
    return root


@pytest.fixture(scope="module")
def trained(tiles, tmp_path_factory):
    folder = tmp_path_factory.mktemp("native")
    params = params_with(**NATIVE, **{"data.source": str(tiles)})
    prepare_dataset(params.data, 1, folder / "prepared", folder / "cache")
    preprocess(folder / "prepared" / "manifest.csv", params.preprocess, folder / "pre")
    train_run(params, Run("unet", "dicebce", 0, 0), folder / "pre", folder / "prepared" / "manifest.csv", folder / "model", folder / "live", folder / "scratch")
    return params, folder


def test_scale_one_keeps_every_tile_at_its_own_size(trained):
    _, folder = trained
    pairs = load_split(folder / "pre")
    assert pairs.images.dtype == object and len(pairs) == 24
    assert [image.shape for image in pairs.images] == [SIZES[int(i[1:]) % len(SIZES)] for i in pairs.ids]
    assert all(image.shape == mask.shape for image, mask in zip(pairs.images, pairs.masks))


def test_a_scale_resizes_each_tile_by_one_factor_keeping_its_shape(tiles, tmp_path):
    params = params_with(**{**NATIVE, "data.source": str(tiles), "preprocess.scale": 0.5})
    prepare_dataset(params.data, 1, tmp_path / "prepared", tmp_path / "cache")
    preprocess(tmp_path / "prepared" / "manifest.csv", params.preprocess, tmp_path / "pre")
    pairs = load_split(tmp_path / "pre")
    expected = {(round(h / 2), round(w / 2)) for h, w in SIZES}
    assert {image.shape for image in pairs.images} == expected


def test_the_saved_model_resizes_new_tiles_by_its_scale_not_to_one_size(trained):
    _, folder = trained
    saved = load_model(folder / "model")
    assert "input_size" not in saved.metadata and saved.metadata["preprocess"]["geometry"] == "scale"
    assert model_input(saved, np.zeros((71, 33), np.uint8)).shape == (71, 33)


def test_evaluate_and_predict_run_whole_tiles_of_every_size(trained, tiles, tmp_path):
    params, folder = trained
    metrics = evaluate_run(folder / "model", folder / "pre", folder / "prepared" / "manifest.csv", 0, 127, params.evaluate, tmp_path / "m.json", tmp_path / "ev")
    assert 0 <= metrics["test"]["iou"] <= 1 and 0 <= metrics["val"]["iou"] <= 1
    assert len(pd.read_csv(tmp_path / "ev" / "per_image.csv")) == metrics["test"]["images"]
    images = sorted((tiles / "images").glob("*.png"))[:4]
    predict(folder / "model", images, tmp_path / "masks", None, 4, False, "cpu")
    assert [read_mask(tmp_path / "masks" / p.name).shape for p in images] == [SIZES[i] for i in range(4)]


def test_tiles_of_their_own_sizes_need_training_crops():
    with pytest.raises(ParamsError, match=r"preprocess.geometry scale keeps tiles at their own sizes: set train.augment.crop_size > 0"):
        params_with(**{**NATIVE, "train.augment.crop_size": 0})
