"""An ensemble of trained models, averaged at the probability map, is one model folder that
predict, evaluate and export take; measured on its members' fold, whose test part none of them trained on."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import command_env, copy_of_tiny_reproduced

from defectseg.errors import DataError
from defectseg.evaluation.export import export_model
from defectseg.models.compute import Compute
from defectseg.models.encoder_unet import split_logits
from defectseg.models.inference import predict_outputs
from defectseg.models.saved_model import load_model, save_ensemble

RUNS = ("unet-bce-seed0-fold0", "unet-dice-seed0-fold0", "unet-dicebce-seed0-fold0")


@pytest.fixture(scope="module")
def repo(tiny_reproduced, tmp_path_factory):
    """A copy of the reproduced tiny pipeline: three runs of fold 0 and the data they were measured on."""
    repo, _ = copy_of_tiny_reproduced(tiny_reproduced, tmp_path_factory.mktemp("ensemble") / "project")
    return repo


def test_the_ensemble_predicts_the_mean_of_its_members_probabilities(repo, tmp_path):
    members = [repo.root / "models" / run for run in RUNS]
    save_ensemble(tmp_path / "ensemble", members)
    ensemble = load_model(tmp_path / "ensemble")
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    compute = Compute(torch.device("cpu"))
    together, _ = predict_outputs(ensemble, images, 8, compute)
    alone = [predict_outputs(load_model(member), images, 8, compute)[0] for member in members]
    np.testing.assert_allclose(together, np.mean(alone, axis=0), atol=1e-5)
    assert ensemble.metadata["members"] == list(RUNS) and ensemble.metadata["fold"] == 0


def test_the_exported_ensemble_computes_what_it_computes_in_torch(repo, tmp_path):
    save_ensemble(tmp_path / "ensemble", [repo.root / "models" / run for run in RUNS[:2]])
    onnx = export_model(tmp_path / "ensemble", "onnx", tmp_path / "ensemble.onnx")
    import onnxruntime

    pixels = np.random.default_rng(1).integers(0, 256, (2, 1, 32, 32)).astype(np.float32)
    exported = onnxruntime.InferenceSession(str(onnx)).run(None, {"pixels": pixels})[0]
    saved = load_model(tmp_path / "ensemble")
    with torch.no_grad():
        logits, _ = split_logits(saved.model(saved.normalization.apply(pixels[:, 0].astype(np.uint8))))
    np.testing.assert_allclose(1 / (1 + np.exp(-exported)), torch.sigmoid(logits).numpy(), atol=1e-5)


def test_members_of_other_folds_or_a_single_member_are_refused(repo, tmp_path):
    member = repo.root / "models" / RUNS[0]
    with pytest.raises(DataError, match="two or more model folders"):
        save_ensemble(tmp_path / "one", [member])
    other = tmp_path / "other-fold"
    other.mkdir()
    for name in ("model.pt", "model.json"):
        (other / name).write_bytes((member / name).read_bytes())
    metadata = json.loads((other / "model.json").read_text())
    (other / "model.json").write_text(json.dumps({**metadata, "fold": 1}))
    with pytest.raises(DataError, match="its fold 1 differs"):
        save_ensemble(tmp_path / "mixed", [member, other])


def test_the_command_measures_the_ensemble_on_its_folds_val_and_test(repo):
    result = subprocess.run(
        [sys.executable, "-m", "defectseg", "ensemble", *(f"models/{run}" for run in RUNS), "--out", "models/ensemble", "--evaluate"],
        cwd=repo.root, env=command_env(), capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    folder = repo.root / "models" / "ensemble"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert f"test IoU {metrics['test']['iou']:.4f}" in result.stdout and (folder / "threshold.json").exists()
    assert (folder / "evaluation" / "per_image.csv").exists()
