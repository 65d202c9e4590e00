"""The ship stage's choice: the report's recommended arm, its run with the best val IoU, and a
card that says when no arm converged."""

import json
import shutil
from pathlib import Path

import pytest

from conftest import params_with
from defectseg.deploy.ship import ship_model
from defectseg.errors import DataError
from defectseg.models.ensemble import Ensemble
from defectseg.models.saved_model import load_decision, load_model


def figures(iou: float) -> dict:
    return {"iou": iou, "mean_image_iou": iou, "detection_recall": 0.9, "false_alarm_rate": 0.05, "per_class_iou": {"crack": iou / 2}, "images": 10}


def arm_figures(iou: float) -> dict:
    return {**figures(iou), "iou_interval": [iou - 0.1, iou + 0.1], "detection_recall_interval": [0.8, 1.0], "false_alarm_rate_interval": [0.0, 0.1],
            "defect_image_iou": iou + 0.05, "defect_image_iou_interval": [iou - 0.05, iou + 0.15], "image_auroc": 0.95, "defect_images": 7, "cost": {"train_tflop": 2.0}}  # fmt: skip


@pytest.fixture
def outputs(shipped_model, tmp_path) -> Path:
    """Two arms of a two-fold comparison: metrics, per-run metrics and model folders (the tiny shipped model's files)."""
    runs = {"unet-bce-seed0-fold0": 0.60, "unet-bce-seed0-fold1": 0.70, "unet-dice-seed0-fold0": 0.90, "unet-dice-seed0-fold1": 0.80}
    for name, val in runs.items():
        shutil.copytree(shipped_model, tmp_path / "models" / name)
        (tmp_path / "runs").mkdir(exist_ok=True)
        (tmp_path / "runs" / f"{name}.json").write_text(json.dumps({"fold": int(name[-1]), "val": figures(val), "test": figures(val - 0.1)}))
    comparison = {
        "advice": {"all defects": {"best": "unet-bce"}},
        "arms": {"unet-bce": arm_figures(0.65), "unet-dice": arm_figures(0.85)},
        "runs": {name: {"status": "converged" if name.startswith("unet-bce") else "still learning"} for name in runs},
        "folds": 2,
    }
    (tmp_path / "comparison.json").write_text(json.dumps(comparison))
    (tmp_path / "summary.json").write_text(json.dumps({"layout": "plain", "pairs": 30, "per_class": {"crack": 10, "free": 20}, "per_fold": [{"train": 10, "val": 5, "test": 15}] * 2}))
    return tmp_path


def ship(root: Path) -> dict:
    return ship_model(params_with(), root / "comparison.json", root / "runs", root / "models", root / "summary.json", root / "release")


def test_with_folds_the_recommended_arms_runs_ship_as_one_ensemble_quoting_the_cross_validated_estimate(outputs):
    card = ship(outputs)
    assert (card["arm"], card["run"], card["recommended"]) == ("unet-bce", "ensemble of 2 runs", True)
    assert card["members"] == ["unet-bce-seed0-fold0", "unet-bce-seed0-fold1"] and all(c["shipped"] for c in card["candidates"])
    assert sorted(p.name for p in (outputs / "release").iterdir()) == ["README.md", "card.json", "model.json", "model.pt", "threshold.json"]
    saved = load_model(outputs / "release")
    assert isinstance(saved.model, Ensemble) and len(saved.model.members) == 2
    members = [load_decision(outputs / "models" / run) for run in card["members"]]
    shipped = load_decision(outputs / "release")
    assert shipped.threshold == pytest.approx(sum(d.threshold for d in members) / 2)
    text = (outputs / "release" / "README.md").read_text()
    assert "recommends `unet-bce`" in text and "| unet-bce-seed0-fold1 | 1 | converged | 0.700 | 0.600 |" in text
    assert "**What ships is the ensemble of these 2 runs**" in text and "estimate for the *procedure*" in text
    assert "| 0.650 [0.550, 0.750] | 0.700 [0.600, 0.800] |" in text and "Not a recommendation" not in text


def test_with_one_split_the_run_with_the_best_val_iou_ships_alone(outputs):
    comparison = json.loads((outputs / "comparison.json").read_text())
    comparison["folds"] = 1
    (outputs / "comparison.json").write_text(json.dumps(comparison))
    card = ship(outputs)
    assert (card["run"], card["members"]) == ("unet-bce-seed0-fold1", ["unet-bce-seed0-fold1"])
    assert (outputs / "release" / "model.pt").read_bytes() == (outputs / "models" / "unet-bce-seed0-fold1" / "model.pt").read_bytes()


def test_with_no_converged_arm_the_best_pooled_arm_ships_and_its_card_says_so(outputs):
    comparison = json.loads((outputs / "comparison.json").read_text())
    comparison["advice"]["all defects"]["best"] = None
    (outputs / "comparison.json").write_text(json.dumps(comparison))
    card = ship(outputs)
    assert (card["arm"], card["run"], card["recommended"]) == ("unet-dice", "ensemble of 2 runs", False)
    assert "**Not a recommendation: no arm of the comparison converged**" in (outputs / "release" / "README.md").read_text()


def test_a_failed_ship_leaves_the_shipped_folder_as_it_was(outputs):
    ship(outputs)
    before = {p.name: p.read_bytes() for p in (outputs / "release").iterdir()}
    (outputs / "models" / "unet-bce-seed0-fold1" / "threshold.json").unlink()
    with pytest.raises(DataError, match="unet-bce-seed0-fold1/threshold.json: missing"):
        ship(outputs)
    assert {p.name: p.read_bytes() for p in (outputs / "release").iterdir()} == before
