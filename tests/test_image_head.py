"""The image-level decision head: a second output channel of the MobileNetV2 U-Net, trained
beside the segmenter, gating evaluate's, predict's and the exported model's tile decisions."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from dvclive import Live
from test_evaluation import write_data
from test_training import tiny_split

from conftest import params_with
from defectseg.data.images import read_image
from defectseg.evaluation.evaluate import evaluate_run
from defectseg.evaluation.export import export_model
from defectseg.evaluation.predict import predict
from defectseg.measures.decision import Decision
from defectseg.models.encoder_unet import split_logits
from defectseg.models.inference import at_size, model_input
from defectseg.models.mobilenet_unet import MobileNetUNet
from defectseg.models.model_format import save_model
from defectseg.models.saved_model import load_decision, load_model, save_decision
from defectseg.training.loop import fit
from defectseg.training.losses import build_loss
from defectseg.training.run_spec import RunSpec

HEAD = {"models.mobilenet_unet.weights": "", "models.mobilenet_unet.weights_sha256": "", "models.mobilenet_unet.decoder_width": 4,
        "models.mobilenet_unet.image_head_weight": 0.5, "preprocess.image_size": 32, "train.epochs": 3, "train.batch_size": 4,
        "train.device": "cpu", "compare.models": ["mobilenet_unet"]}  # fmt: skip


def test_the_head_is_a_second_channel_holding_one_image_logit_everywhere():
    torch.manual_seed(0)
    output = MobileNetUNet(4, image_head=True).eval()(torch.randn(3, 1, 40, 56))
    assert output.shape == (3, 2, 40, 56)
    pixels, image = split_logits(output)
    assert pixels.shape == (3, 1, 40, 56) and image.shape == (3,)
    assert torch.equal(output[:, 1], image[:, None, None].expand(3, 40, 56))
    plain = MobileNetUNet(4).eval()(torch.randn(1, 1, 32, 32))
    assert split_logits(plain)[1] is None


@pytest.fixture(scope="module")
def head_model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("head")
    params = params_with(**HEAD)
    settings = params.models.mobilenet_unet
    spec = RunSpec(params.train, "mobilenet_unet", settings, "dicebce", {}, 0, "data")
    with Live(dir=str(root / "live"), dvcyaml=None, save_dvc_exp=False) as live:
        result = fit(spec, build_loss("dicebce", params.losses), tiny_split(16, 0), tiny_split(6, 60), root / "last.pt", live)
    folder = root / "model"
    save_model(folder, result["best"]["weights"], "mobilenet_unet", settings, result["normalization"], {"input_size": [32, 32], "best_epoch": 1})
    return folder


def test_evaluate_gates_on_the_heads_probability_chosen_on_val(head_model, tmp_path):
    data = write_data(tmp_path / "data")
    evaluate = params_with(**{**HEAD, "evaluate.device": "cpu", "evaluate.max_false_alarm_rate": 0.34}).evaluate
    metrics = evaluate_run(head_model, data / "pre", data / "manifest.csv", 0, 127, evaluate, tmp_path / "m.json", tmp_path / "ev")
    decision = load_decision(head_model)
    assert decision.head_score and metrics["head_score"] and decision.image_threshold == metrics["image_threshold"]
    saved = load_model(head_model)
    manifest = pd.read_csv(data / "manifest.csv", dtype={"id": str}).set_index("id")
    rows = pd.read_csv(tmp_path / "ev" / "per_image.csv", dtype={"id": str})
    pixels = saved.normalization.apply(np.stack([model_input(saved, read_image(Path(manifest.loc[i, "image"]))) for i in rows["id"]]))
    with torch.no_grad():
        _, image_logits = split_logits(saved.model(pixels))
    np.testing.assert_allclose(rows["score"], torch.sigmoid(image_logits).numpy(), atol=2e-6)
    flagged = (rows["tp"] + rows["fp"]) > 0
    assert not flagged[rows["score"] <= decision.image_threshold].any()


# how far ONNX Runtime's and torch's image probabilities of one tile may differ: float32 rounding
# (a step is 6e-8 near 0.67, where this barely trained head puts every tile, 2e-5 apart at most)
SCORE_TOLERANCE = 1e-6


def test_predict_and_the_exported_model_make_the_same_tile_decisions(head_model, tmp_path):
    data = write_data(tmp_path / "data")
    images = sorted((data / "pairs").glob("*[0-9].png"))
    saved = load_model(head_model)
    pixels = torch.from_numpy(np.stack([model_input(saved, read_image(p)) for p in images])).float()[:, None]
    with torch.no_grad():
        heads = torch.sigmoid(split_logits(saved.model(saved.normalization.apply(pixels[:, 0].numpy().astype(np.uint8))))[1]).numpy()
    gate = float(np.median(heads))
    save_decision(head_model, Decision(0.5, image_threshold=gate, head_score=True), "val", 0.0)
    outcome = predict(head_model, images, tmp_path / "masks", None, 8, False, "cpu")
    by_predict = {Path(row["image"]).stem: bool(row["has_defect"]) for row in outcome.rows}
    onnx = export_model(head_model, "onnx", tmp_path / "model.onnx")
    import onnxruntime

    output = onnxruntime.InferenceSession(str(onnx)).run(None, {"pixels": pixels.numpy()})[0]
    image_probability = 1 / (1 + np.exp(-output[:, 1, 0, 0]))
    pixel_probability = 1 / (1 + np.exp(-output[:, 0]))
    decision = load_decision(head_model)
    by_export = {}
    for path, probability, head in zip(images, pixel_probability, image_probability):
        height, width = read_image(path).shape
        by_export[path.stem] = bool(decision.apply(at_size(probability, height, width), float(head)).any())
    np.testing.assert_allclose(image_probability, heads, atol=SCORE_TOLERANCE)
    # a tile whose score lies within the tolerance of the gate (the median tile itself) is decided by
    # rounding: either answer is right, so it is named and left out; every other tile must agree
    borderline = sorted(path.stem for path, head in zip(images, heads) if abs(head - gate) <= SCORE_TOLERANCE)
    decided = [path.stem for path in images if path.stem not in borderline]
    assert len(decided) >= len(images) // 2 and {by_predict[name] for name in decided} == {True, False}, f"borderline: {borderline}"
    assert {name: by_export[name] for name in decided} == {name: by_predict[name] for name in decided}, f"borderline, not compared: {borderline}"
    assert not any(by_predict[path.stem] for path, head in zip(images, heads) if head <= gate), "the head's gate empties these tiles"
    assert json.loads((head_model / "threshold.json").read_text())["head_score"] is True
