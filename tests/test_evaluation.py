"""Evaluate one saved model: the threshold comes from val alone, outputs are complete."""

import json

import numpy as np
import pytest
import torch

from conftest import params_with
from defectseg.dataset import Normalization
from defectseg.evaluation import choose_threshold, evaluate_run
from defectseg.models import build_model
from defectseg.decision import Decision
from defectseg.saved_model import load_decision, load_model, save_model
from defectseg.synthetic import make_tile


def write_split(path, offset, count=6, invert_masks=False):
    tiles = [make_tile(3, offset + i, 32, 0.3) for i in range(count)]
    masks = (np.stack([t.mask for t in tiles]) > 0).astype(np.uint8)
    np.savez(
        path,
        images=np.stack([t.image for t in tiles]),
        masks=1 - masks if invert_masks else masks,
        ids=np.array([f"t{offset + i}" for i in range(count)]),
        classes=np.array([t.defect_class for t in tiles]),
    )


@pytest.fixture
def model_dir(tmp_path):
    params = params_with(**{"train.unet.base_width": 4, "train.unet.depth": 2})
    torch.manual_seed(0)
    model = build_model("unet", params.train.unet)
    folder = tmp_path / "model"
    save_model(folder, model.state_dict(), params.train, Normalization(0.5, 0.2), {"input_size": [32, 32], "best_epoch": 1})
    return folder


def run(tmp_path, model_dir, data_dir, name, **overrides):
    params = params_with(**{"evaluate.device": "cpu", "evaluate.worst_overlays": 3, **overrides})
    return evaluate_run(model_dir, data_dir, params.evaluate, tmp_path / f"{name}.json", tmp_path / name)


def test_choose_threshold_maximises_iou_on_the_grid():
    probabilities = np.array([[[0.2, 0.45, 0.55, 0.9]]])
    truth = np.array([[[0, 0, 1, 1]]])
    assert choose_threshold(probabilities, truth, steps=9) == pytest.approx(0.5)


def test_threshold_depends_on_val_only(tmp_path, model_dir):
    data = tmp_path / "data"
    data.mkdir()
    write_split(data / "train.npz", 0)
    write_split(data / "val.npz", 100)
    write_split(data / "test.npz", 200)
    first = run(tmp_path, model_dir, data, "first")
    write_split(data / "test.npz", 300, invert_masks=True)
    write_split(data / "train.npz", 400, invert_masks=True)
    second = run(tmp_path, model_dir, data, "second")
    assert first["threshold"] == second["threshold"]
    assert first["test"] != second["test"]


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for offset, split in enumerate(("train", "val", "test")):
        write_split(folder / f"{split}.npz", offset * 100)
    return folder


def test_evaluation_writes_metrics_curve_counts_and_overlays(tmp_path, model_dir, data):
    result = run(tmp_path, model_dir, data, "out")
    assert json.loads((tmp_path / "out.json").read_text()) == result
    assert set(result) == {"threshold", "min_region_share", "best_epoch", "train", "val", "test"}
    assert 0 <= result["test"]["iou"] <= 1
    assert (tmp_path / "out" / "pr_curve.csv").read_text().startswith("recall,precision")
    assert len((tmp_path / "out" / "per_image.csv").read_text().splitlines()) == 7
    assert 1 <= len(list((tmp_path / "out" / "overlays").glob("*.png"))) <= 3


def test_region_filter_removes_false_alarms_and_is_saved_for_predict(tmp_path, model_dir, data):
    plain = run(tmp_path, model_dir, data, "plain")
    filtered = run(tmp_path, model_dir, data, "filtered", **{"evaluate.min_region_share": 0.5})
    assert filtered["threshold"] == plain["threshold"] and filtered["min_region_share"] == 0.5
    assert filtered["test"]["pixel_recall"] <= plain["test"]["pixel_recall"]
    assert plain["test"]["false_alarm_rate"] > 0
    assert filtered["test"]["false_alarm_rate"] == 0
    assert load_decision(model_dir) == Decision(filtered["threshold"], 0.5)


def test_saved_model_round_trips(model_dir):
    saved = load_model(model_dir)
    assert saved.metadata["architecture"]["model"] == "unet"
    assert saved.normalization == Normalization(0.5, 0.2)
    assert saved.model(torch.zeros(1, 1, 32, 32)).shape == (1, 1, 32, 32)
