"""Evaluate one trained run: pick the threshold on val, then measure train, val and test.

Outputs: the metrics JSON (a DVC metric), the test precision-recall curve (a DVC plot),
per-image test counts (for the report's paired bootstrap), and overlays of the worst
test images.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from defectseg.atomic import atomic_dir, atomic_file, write_json
from defectseg.dataset import Split, load_split
from defectseg.decision import Decision
from defectseg.metrics import Counts, iou_by_threshold, per_class_iou, per_image_iou, pr_curve, summarize
from defectseg.overlays import overlay_panel
from defectseg.params import EvaluateParams
from defectseg.saved_model import SavedModel, load_model, save_decision
from defectseg.training import Compute, pick_device, predict_logits


def predict_probabilities(saved: SavedModel, images: np.ndarray, batch_size: int, compute: Compute) -> np.ndarray:
    """Defect probabilities (N, H, W) float32 for uint8 images (N, H, W) of the model's input size."""
    model = compute.prepare(saved.model)
    logits = predict_logits(model, saved.normalization.apply(images), compute, batch_size)
    return torch.sigmoid(logits).squeeze(1).numpy()


def choose_threshold(probabilities: np.ndarray, truth: np.ndarray, steps: int) -> float:
    """The probability threshold in (0, 1), on a grid of ``steps``, that maximises global IoU.

    Ties go to the lowest threshold.
    """
    thresholds, scores = iou_by_threshold(probabilities, truth > 0, steps)
    return float(round(thresholds[int(np.argmax(scores))], 6))


def _write_pr_curve(path: Path, probabilities: np.ndarray, truth: np.ndarray) -> None:
    precision, recall, _ = pr_curve(probabilities, truth, bins=200)
    with atomic_file(path) as tmp:
        pd.DataFrame({"recall": recall.round(6), "precision": precision.round(6)}).to_csv(tmp, index=False)


def _write_per_image(path: Path, split: Split, counts: Counts) -> None:
    table = pd.DataFrame(
        {"id": split.ids, "defect_class": split.classes, "tp": counts.tp, "fp": counts.fp, "fn": counts.fn, "tn": counts.tn}
    )
    with atomic_file(path) as tmp:
        table.to_csv(tmp, index=False)


def _worst_images(counts: Counts, how_many: int) -> np.ndarray:
    """Indices of the test images with the lowest IoU among those with any error."""
    wrong = np.flatnonzero((counts.fp + counts.fn) > 0)
    order = np.argsort(per_image_iou(counts)[wrong], kind="stable")
    return wrong[order[:how_many]]


def _write_overlays(folder: Path, split: Split, predicted: np.ndarray, counts: Counts, how_many: int) -> None:
    ious = per_image_iou(counts)
    with atomic_dir(folder) as tmp:
        for rank, index in enumerate(_worst_images(counts, how_many), start=1):
            panel = overlay_panel(split.images[index], split.masks[index], predicted[index])
            name = f"{rank:02d}_{split.ids[index]}_iou{ious[index]:.2f}.png"
            Image.fromarray(panel).save(tmp / name)


def evaluate_run(model_dir: Path, data_dir: Path, params: EvaluateParams, metrics_path: Path, out_dir: Path) -> dict:
    """Evaluate the model in ``model_dir`` and write every output; return the metrics."""
    saved = load_model(model_dir)
    compute = Compute(pick_device(params.device))
    splits = {name: load_split(Path(data_dir) / f"{name}.npz") for name in ("val", "test", "train")}
    probabilities = {name: predict_probabilities(saved, s.images, params.batch_size, compute) for name, s in splits.items()}
    threshold = choose_threshold(probabilities["val"], splits["val"].masks, params.threshold_steps)
    decision = Decision(threshold, params.min_region_share)
    result = {"threshold": threshold, "min_region_share": params.min_region_share, "best_epoch": saved.metadata["best_epoch"]}
    for name, split in splits.items():
        predicted = decision.apply(probabilities[name])
        counts = Counts.of(predicted, split.masks > 0)
        result[name] = summarize(counts, probabilities[name], split.masks)
        result[name]["per_class_iou"] = per_class_iou(counts, split.classes)
        if name == "test":
            out_dir = Path(out_dir)
            _write_pr_curve(out_dir / "pr_curve.csv", probabilities[name], split.masks)
            _write_per_image(out_dir / "per_image.csv", split, counts)
            _write_overlays(out_dir / "overlays", split, predicted, counts, params.worst_overlays)
    save_decision(model_dir, decision, "val", result["val"]["iou"])
    write_json(metrics_path, result)
    return result
