"""Evaluate one saved model: the decision comes from val alone, every figure is counted at
each image's own size, outputs are complete, and predict reproduces evaluate's masks."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import params_with, write_png

from defectseg.data.dataset import Normalization
from defectseg.data.images import read_mask
from defectseg.data.preprocess import preprocess
from defectseg.data.synthetic import make_tile
from defectseg.evaluation.evaluate import choose_threshold, evaluate_run
from defectseg.evaluation.predict import predict
from defectseg.measures.decision import Decision
from defectseg.measures.metrics import Counts
from defectseg.models.factory import build_model
from defectseg.models.model_format import save_model
from defectseg.models.saved_model import load_decision, load_model

NATIVE_SIDES = (40, 56, 72)


def write_data(folder: Path, invert: tuple[str, ...] = (), offsets=(0, 100, 200)) -> Path:
    """Pairs of three native sizes per split, a manifest, and the 32-px preprocessed splits."""
    rows = []
    for split, offset in zip(("train", "val", "test"), offsets):
        for i in range(6):
            side = NATIVE_SIDES[i % 3]
            tile = make_tile(3, offset + i, side, 0.3)
            mask = (tile.mask > 0) if split not in invert else (tile.mask == 0)
            stem = f"{split}{offset + i}"
            image = write_png(folder / "pairs" / f"{stem}.png", tile.image)
            mask_path = write_png(folder / "pairs" / f"{stem}_mask.png", mask.astype(np.uint8) * 255)
            rows.append({"id": stem, "defect_class": tile.defect_class, "fold0": split, "image": str(image), "mask": str(mask_path)})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    preprocess(folder / "manifest.csv", params_with(**{"preprocess.image_size": 32}).preprocess, folder / "pre")
    return folder


@pytest.fixture
def model_dir(tmp_path):
    params = params_with(**{"models.unet.base_width": 4, "models.unet.depth": 2})
    torch.manual_seed(0)
    model = build_model("unet", params.models.unet)
    with torch.no_grad():
        model.head.weight.mul_(30)  # spread the untrained model's probabilities over (0, 1)
    folder = tmp_path / "model"
    save_model(folder, model.state_dict(), "unet", params.models.unet, Normalization(0.5, 0.2), {"input_size": [32, 32], "best_epoch": 1})
    return folder


@pytest.fixture
def data(tmp_path):
    return write_data(tmp_path / "data")


def run(tmp_path, model_dir, data, name, **overrides):
    params = params_with(**{"evaluate.device": "cpu", "evaluate.worst_overlays": 3, "evaluate.max_false_alarm_rate": 1.0, **overrides})
    return evaluate_run(model_dir, data / "pre", data / "manifest.csv", 0, 127, params.evaluate, tmp_path / f"{name}.json", tmp_path / name)


def test_choose_threshold_maximises_iou_on_the_grid_over_maps_of_any_size():
    probabilities = [np.array([[0.2, 0.45]]), np.array([[0.55], [0.9]])]
    truth = [np.array([[0, 0]]), np.array([[1], [1]])]
    assert choose_threshold(probabilities, truth, steps=9) == pytest.approx(0.5)


def test_class_mean_threshold_keeps_a_faint_small_defect_that_pooled_iou_gives_up():
    large = np.zeros((40, 40))
    large[:25, :40] = 0.8
    large[25:27, :25] = 0.45
    large_truth = large > 0.5
    small = np.zeros((10, 10))
    small[0, :] = 0.3
    probabilities, truth = [large, small], [large_truth, small > 0]
    classes = np.array(["uneven", "blowhole"])
    assert choose_threshold(probabilities, truth, steps=9) == pytest.approx(0.5)
    assert choose_threshold(probabilities, truth, steps=9, classes=classes) == pytest.approx(0.1)


def test_decision_depends_on_val_only(tmp_path, model_dir):
    first = run(tmp_path, model_dir, write_data(tmp_path / "a"), "first")
    second = run(tmp_path, model_dir, write_data(tmp_path / "b", invert=("train", "test")), "second")
    assert (first["threshold"], first["image_threshold"]) == (second["threshold"], second["image_threshold"])
    assert first["test"] != second["test"]


def test_every_test_image_is_counted_at_its_original_size(tmp_path, model_dir, data):
    run(tmp_path, model_dir, data, "out")
    table = pd.read_csv(tmp_path / "out" / "per_image.csv")
    pixels = (table["tp"] + table["fp"] + table["fn"] + table["tn"]).tolist()
    assert pixels == [side * side for side in NATIVE_SIDES] * 2
    truth_pixels = [int((read_mask(data / "pairs" / f"{i}_mask.png") > 127).sum()) for i in table["id"]]
    assert (table["tp"] + table["fn"]).tolist() == truth_pixels


def test_evaluation_writes_metrics_curve_counts_and_overlays(tmp_path, model_dir, data):
    result = run(tmp_path, model_dir, data, "out")
    assert json.loads((tmp_path / "out.json").read_text()) == result
    assert {"threshold", "image_threshold", "min_region_share", "train", "val", "test"} <= set(result)
    assert 0 <= result["test"]["iou"] <= 1
    assert {"image_auroc", "recall_at_false_alarm_rate", "per_class_mean_image_iou"} <= set(result["test"])
    assert (tmp_path / "out" / "pr_curve.csv").read_text().startswith("recall,precision")
    assert len((tmp_path / "out" / "per_image.csv").read_text().splitlines()) == 7
    assert 1 <= len(list((tmp_path / "out" / "overlays").glob("*.png"))) <= 3


def test_region_filter_removes_regions_and_is_saved_for_predict(tmp_path, model_dir, data):
    plain = run(tmp_path, model_dir, data, "plain")
    plain_counts = pd.read_csv(tmp_path / "plain" / "per_image.csv")
    filtered = run(tmp_path, model_dir, data, "filtered", **{"evaluate.min_region_share": 0.5})
    filtered_counts = pd.read_csv(tmp_path / "filtered" / "per_image.csv")
    assert filtered["threshold"] == plain["threshold"] and filtered["min_region_share"] == 0.5
    assert (filtered_counts["fp"] <= plain_counts["fp"]).all() and filtered_counts["fp"].sum() < plain_counts["fp"].sum()
    assert filtered["test"]["pixel_recall"] <= plain["test"]["pixel_recall"]
    assert load_decision(model_dir) == Decision(filtered["threshold"], 0.5, 0.0)


def test_image_gate_keeps_val_false_alarms_within_the_rate(tmp_path, model_dir, data):
    open_gate = run(tmp_path, model_dir, data, "open")
    gated = run(tmp_path, model_dir, data, "gated", **{"evaluate.max_false_alarm_rate": 0.01})
    assert open_gate["image_threshold"] == 0.0 and open_gate["val"]["false_alarm_rate"] > 0
    assert gated["image_threshold"] > 0 and gated["val"]["false_alarm_rate"] == 0
    assert load_decision(model_dir).image_threshold == gated["image_threshold"]


def test_measure_train_off_scores_val_and_test_only(tmp_path, model_dir, data):
    result = run(tmp_path, model_dir, data, "out", **{"evaluate.measure_train": False})
    assert {"val", "test"} <= set(result) and "train" not in result


@pytest.mark.parametrize(("flip_tta", "score_share"), [(False, 0.0), (True, 0.0), (False, 0.02)])
def test_predict_reproduces_the_evaluate_masks_of_the_test_images(tmp_path, model_dir, data, flip_tta, score_share):
    settings = {"evaluate.min_region_share": 0.01, "evaluate.max_false_alarm_rate": 0.2, "evaluate.flip_tta": flip_tta, "evaluate.image_score_share": score_share}
    result = run(tmp_path, model_dir, data, "out", **settings)
    assert (result["flip_tta"], result["score_top_share"]) == (flip_tta, score_share)
    assert (load_decision(model_dir).flip_tta, load_decision(model_dir).score_top_share) == (flip_tta, score_share)
    table = pd.read_csv(tmp_path / "out" / "per_image.csv")
    predict(model_dir, [data / "pairs" / f"{i}.png" for i in table["id"]], tmp_path / "masks", None, 4, False, "cpu")
    predicted = [read_mask(tmp_path / "masks" / f"{i}.png") > 0 for i in table["id"]]
    truth = [read_mask(data / "pairs" / f"{i}_mask.png") > 127 for i in table["id"]]
    counts = Counts.of(predicted, truth)
    assert (counts.tp.tolist(), counts.fp.tolist(), counts.fn.tolist()) == (table["tp"].tolist(), table["fp"].tolist(), table["fn"].tolist())


def test_saved_model_round_trips(model_dir):
    saved = load_model(model_dir)
    assert saved.metadata["architecture"]["model"] == "unet"
    assert saved.normalization == Normalization(0.5, 0.2)
    assert saved.model(torch.zeros(1, 1, 32, 32)).shape == (1, 1, 32, 32)


def test_the_class_mean_objective_on_val_without_defect_pixels_falls_back_to_pooled_iou():
    probabilities = [np.array([[0.2, 0.7]]), np.array([[0.1, 0.4]])]
    truth = [np.zeros((1, 2), bool), np.zeros((1, 2), bool)]
    classes = np.array(["free", "free"])
    assert choose_threshold(probabilities, truth, 9, classes) == choose_threshold(probabilities, truth, 9)
