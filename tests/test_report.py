"""The report renders from fixture metrics, with tables, bootstrap, figures and overlays."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import params_with
from defectseg.errors import DataError
from defectseg.report import build_report


def split_metrics(iou):
    return {
        "iou": iou, "mean_image_iou": iou - 0.05, "false_alarm_rate": 0.1, "detection_precision": 0.9,
        "detection_recall": 0.8, "dice": 2 * iou / (1 + iou), "pixel_precision": 0.7, "pixel_recall": 0.6,
        "pixel_ap": 0.65, "miou_2class": (1 + iou) / 2, "images": 20, "image_auroc": 0.95,
        "recall_at_false_alarm_rate": 0.85,
        "per_class_iou": {"crack": iou - 0.1, "blowhole": iou + 0.1},
        "per_class_mean_image_iou": {"crack": iou - 0.2, "blowhole": iou},
    }  # fmt: skip


def write_run(root, name, iou, tp):
    (root / "metrics").mkdir(exist_ok=True)
    (root / "metrics" / f"{name}.json").write_text(
        json.dumps({"threshold": 0.4, "best_epoch": 3, "test": split_metrics(iou), "train": split_metrics(iou + 0.1), "val": split_metrics(iou)})
    )
    folder = root / "evaluation" / name
    (folder / "overlays").mkdir(parents=True)
    (folder / "overlays" / "01_t3_iou0.10.png").write_bytes(b"")
    ids = [f"t{i}" for i in range(20)]
    pd.DataFrame({"id": ids, "defect_class": "crack", "tp": tp, "fp": 5, "fn": 5, "tn": 100}).to_csv(folder / "per_image.csv", index=False)
    pd.DataFrame({"recall": [0.0, 0.5, 1.0], "precision": [1.0, 0.8, 0.3]}).to_csv(folder / "pr_curve.csv", index=False)
    plots = root / "dvclive" / name / "plots" / "metrics"
    for group, metric, values in [("train", "loss", [0.9, 0.5]), ("val", "loss", [0.8, 0.6]), ("val", "iou", [0.2, iou])]:
        (plots / group).mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"step": [0, 1], metric: values}).to_csv(plots / group / f"{metric}.tsv", sep="\t", index=False)


@pytest.fixture
def fixture_runs(tmp_path):
    write_run(tmp_path, "bce-seed0", 0.50, np.full(20, 10))
    write_run(tmp_path, "dice-seed0", 0.60, np.full(20, 20))
    (tmp_path / "summary.json").write_text(json.dumps({"layout": "synthetic", "pairs": 100, "per_split": {"train": 70, "val": 15, "test": 15}}))
    return tmp_path


def build(root, **overrides):
    params = params_with(**{"compare.losses": ["bce", "dice"], **overrides})
    return build_report(
        params, root / "metrics", root / "evaluation", root / "dvclive", root / "summary.json", root / "reports", root / "comparison.json"
    )


def test_report_renders_tables_figures_and_overlays(fixture_runs):
    table = build(fixture_runs)
    report = (fixture_runs / "reports" / "report.md").read_text()
    assert "| bce | 0.500 | 0.450 | 0.800 | 0.100 | 0.900 | 0.950 | 0.850 |" in report
    assert "measured at each image's own size" in report
    assert "20 test images, 20 of them with defects" in report and "| [0.500, 0.500] |" in report
    assert "| dice | 0.600 |" in report
    assert "| bce − dice | -0.167 |" in report and "| yes |" in report
    assert "| loss | blowhole | crack |" in report and "| dice | 0.700 | 0.500 |" in report
    assert "## Test mean image IoU per defect class" in report and "| dice | 0.600 | 0.400 |" in report
    assert "![01_t3_iou0.10](overlays/bce-seed0/01_t3_iou0.10.png)" in report
    for picture in ("figures/training_curves.png", "figures/pr_curves.png", "overlays/dice-seed0/01_t3_iou0.10.png"):
        assert (fixture_runs / "reports" / picture).is_file()
    comparison = json.loads((fixture_runs / "comparison.json").read_text())
    assert comparison["losses"]["dice"]["test_iou"] == 0.6 == table["dice"]["test_iou"]
    assert comparison["bootstrap"]["bce_vs_dice"]["significant"] is True


def test_several_seeds_give_intervals(fixture_runs):
    write_run(fixture_runs, "bce-seed1", 0.54, np.full(20, 11))
    write_run(fixture_runs, "dice-seed1", 0.58, np.full(20, 19))
    table = build(fixture_runs, **{"compare.seeds": [0, 1]})
    assert table["bce"]["test_iou"] == pytest.approx(0.52)
    assert table["bce"]["test_iou_ci"] == pytest.approx(12.706 * np.std([0.5, 0.54], ddof=1) / np.sqrt(2), rel=1e-3)
    assert "0.520 ± 0.254" in (fixture_runs / "reports" / "report.md").read_text()


def test_missing_run_is_named(fixture_runs):
    with pytest.raises(DataError, match="focal-seed0.json: run focal-seed0 has not been evaluated"):
        build(fixture_runs, **{"compare.losses": ["bce", "focal"]})


def test_header_names_the_refinement_branch_and_flip_tta(fixture_runs):
    build(fixture_runs, **{"models.unet.downscale": 2, "models.unet.refine.width": 8, "evaluate.flip_tta": True})
    report = (fixture_runs / "reports" / "report.md").read_text()
    assert "at 1/2 resolution, refined by a 8-channel full-resolution branch" in report
    assert "averaged over the image and its horizontal and vertical mirror images" in report
