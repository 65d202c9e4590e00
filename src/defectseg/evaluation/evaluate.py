"""Evaluate one trained run at each image's own size: choose the decision on its fold's
val, then measure the fold's val and test (and train, with ``evaluate.measure_train``).

The model sees the preprocessed images (resized to its input size, exactly as
``defectseg predict`` resizes); every probability map is resized back to its image's
original size and scored there against the original mask, binarized at
``preprocess.mask_threshold``. So every figure is measured on the masks a user gets.

Outputs: the metrics JSON (a DVC metric), the test precision-recall curve (a DVC plot),
per-image test counts and scores (for the report's paired bootstrap), and overlays of
the worst test images.
"""

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from defectseg.config.evaluate import EvaluateParams
from defectseg.data.dataset import Split, load_split, split_fold
from defectseg.data.images import read_image, read_mask
from defectseg.data.manifest import read_manifest
from defectseg.data.preprocess import binarize_mask
from defectseg.evaluation.overlays import overlay_panel
from defectseg.foundation.atomic import atomic_dir, atomic_file, write_json
from defectseg.foundation.threads import job_slot
from defectseg.measures.decision import Decision, gate_for_false_alarms, image_score
from defectseg.measures.metrics import Counts, flatten, iou_by_threshold, per_class_iou, per_class_mean_image_iou, per_image_iou, pr_curve, split_metrics
from defectseg.models.compute import Compute, pick_device
from defectseg.models.inference import at_size, per_image_heads, predict_outputs
from defectseg.models.saved_model import load_model, save_decision


@dataclass(frozen=True)
class NativeSplit:
    """One split at its images' own sizes: probability maps and truth masks, in the split's
    order, the share of top pixels each image's score averages (``decision.image_score``)
    and, from a model with an image head, its "has a defect" probabilities, which are then the scores."""

    split: Split
    images: list[str]
    probabilities: list[np.ndarray]
    truth: list[np.ndarray]
    score_top_share: float = 0.0
    head_scores: np.ndarray | None = None

    @cached_property
    def scores(self) -> np.ndarray:
        """Each image's score, computed once."""
        if self.head_scores is not None:
            return np.asarray(self.head_scores, dtype=float)
        return np.array([image_score(p, self.score_top_share) for p in self.probabilities])

    def heads(self) -> list[float | None]:
        """Each image's head probability, or None per image without a head (what ``Decision.apply`` takes)."""
        return per_image_heads(self.head_scores, len(self.probabilities))


def native_split(
    split: Split, probabilities: np.ndarray, manifest: pd.DataFrame, mask_threshold: int, score_top_share: float = 0.0, head_scores: np.ndarray | None = None
) -> NativeSplit:
    """``split``'s probability maps resized to, and scored against, the original masks."""
    rows = manifest.loc[list(split.ids)]
    truth = [binarize_mask(read_mask(Path(p)), mask_threshold).astype(bool) for p in rows["mask"]]
    maps = [at_size(p, *t.shape) for p, t in zip(probabilities, truth)]
    return NativeSplit(split, list(rows["image"]), maps, truth, score_top_share, head_scores)


def choose_threshold(probabilities: list[np.ndarray], truth: list[np.ndarray], steps: int, classes: np.ndarray | None = None) -> float:
    """The probability threshold in (0, 1), on a grid of ``steps``, that maximises global IoU or,
    given each image's defect class, the mean over the classes with defect pixels of the IoU
    pooled within the class (so a class of small defects weighs as much as one of large ones);
    where no class has defect pixels, global IoU.

    Ties go to the lowest threshold.
    """
    thresholds, scores = iou_by_threshold(flatten(probabilities), flatten(truth), steps)
    if classes is not None:
        curves = []
        for name in sorted(set(classes.tolist())):
            members = np.flatnonzero(classes == name)
            if any(truth[i].any() for i in members):
                curves.append(iou_by_threshold(flatten([probabilities[i] for i in members]), flatten([truth[i] for i in members]), steps)[1])
        scores = np.mean(curves, axis=0) if curves else scores
    return float(round(thresholds[int(np.argmax(scores))], 6))


def choose_decision(val: NativeSplit, params: EvaluateParams, groups: np.ndarray | None = None) -> Decision:
    """The pixel threshold that maximises val IoU (``params.threshold_objective``: pooled, or the
    mean of the classes' IoUs), and the image gate that keeps val false alarms (by image score:
    the image head's, where the model has one) within ``params.max_false_alarm_rate``, its
    confidence bound counting the defect-free images' ``groups`` (each val image's group; None: each alone)."""
    classes = val.split.classes if params.threshold_objective == "class_mean" else None
    threshold = choose_threshold(val.probabilities, val.truth, params.threshold_steps, classes)
    free = np.array([not t.any() for t in val.truth])
    # the confidence bound counts groups as trials; the point rate (confidence 0) counts images
    free_groups = None if groups is None or params.false_alarm_confidence == 0.0 else len(set(np.asarray(groups)[free].tolist()))
    gate = gate_for_false_alarms(val.scores[free], params.max_false_alarm_rate, params.false_alarm_confidence, free_groups)
    return Decision(threshold, params.min_region_share, gate, params.flip_tta, params.image_score_share, val.head_scores is not None)


def _write_pr_curve(path: Path, native: NativeSplit) -> None:
    precision, recall, _ = pr_curve(flatten(native.probabilities), flatten(native.truth), bins=200)
    with atomic_file(path) as tmp:
        pd.DataFrame({"recall": recall.round(6), "precision": precision.round(6)}).to_csv(tmp, index=False)


def _write_per_image(path: Path, native: NativeSplit, counts: Counts) -> None:
    table = pd.DataFrame(
        {
            "id": native.split.ids,
            "defect_class": native.split.classes,
            "tp": counts.tp,
            "fp": counts.fp,
            "fn": counts.fn,
            "tn": counts.tn,
            "score": native.scores.round(6),
        }
    )
    with atomic_file(path) as tmp:
        table.to_csv(tmp, index=False)


def _worst_images(counts: Counts, how_many: int) -> np.ndarray:
    """Indices of the test images with the lowest IoU among those with any error."""
    wrong = np.flatnonzero((counts.fp + counts.fn) > 0)
    order = np.argsort(per_image_iou(counts)[wrong], kind="stable")
    return wrong[order[:how_many]]


def _write_overlays(folder: Path, native: NativeSplit, predicted: list[np.ndarray], counts: Counts, how_many: int) -> None:
    ious = per_image_iou(counts)
    with atomic_dir(folder) as tmp:
        for rank, index in enumerate(_worst_images(counts, how_many), start=1):
            panel = overlay_panel(read_image(Path(native.images[index])), native.truth[index], predicted[index])
            name = f"{rank:02d}_{native.split.ids[index]}_iou{ious[index]:.2f}.png"
            Image.fromarray(panel).save(tmp / name)


def measure(native: NativeSplit, decision: Decision, false_alarm_rate: float) -> tuple[dict, list[np.ndarray], Counts]:
    """The split's metrics under ``decision``, with its predicted masks and per-image counts."""
    predicted = [decision.apply(p, h) for p, h in zip(native.probabilities, native.heads())]
    counts = Counts.of(predicted, native.truth)
    metrics = split_metrics(counts, native.probabilities, native.truth, native.scores, false_alarm_rate)
    metrics["per_class_iou"] = per_class_iou(counts, native.split.classes)
    metrics["per_class_mean_image_iou"] = per_class_mean_image_iou(counts, native.split.classes)
    return metrics, predicted, counts


def evaluate_run(
    model_dir: Path, pairs_dir: Path, manifest_path: Path, fold: int, mask_threshold: int, params: EvaluateParams, metrics_path: Path, out_dir: Path
) -> dict:
    """Evaluate the model in ``model_dir`` on ``fold`` and write every output; return the metrics."""
    with job_slot():
        return _evaluate_run(model_dir, pairs_dir, manifest_path, fold, mask_threshold, params, metrics_path, out_dir)


def _evaluate_run(
    model_dir: Path, pairs_dir: Path, manifest_path: Path, fold: int, mask_threshold: int, params: EvaluateParams, metrics_path: Path, out_dir: Path
) -> dict:
    saved = load_model(model_dir)
    compute = Compute(pick_device(params.device, "evaluate.device"))
    manifest = read_manifest(manifest_path)
    loaded = split_fold(load_split(pairs_dir), manifest, manifest_path, fold)
    splits = {}
    for name in ("val", "test", "train") if params.measure_train else ("val", "test"):
        split = loaded[name]
        probabilities, heads = predict_outputs(saved, split.images, params.batch_size, compute, params.flip_tta)
        splits[name] = native_split(split, probabilities, manifest, mask_threshold, params.image_score_share, heads)
    val_groups = manifest["group"].reindex(splits["val"].split.ids).to_numpy() if "group" in manifest else None
    decision = choose_decision(splits["val"], params, val_groups)
    result = {
        "threshold": decision.threshold,
        "image_threshold": decision.image_threshold,
        "min_region_share": decision.min_region_share,
        "flip_tta": decision.flip_tta,
        "score_top_share": decision.score_top_share,
        "head_score": decision.head_score,
        "best_epoch": saved.metadata["best_epoch"],
        "fold": fold,
        "measured_at": "each image's original size",
    }
    for name, native in splits.items():
        result[name], predicted, counts = measure(native, decision, params.max_false_alarm_rate)
        if name == "test":
            out_dir = Path(out_dir)
            _write_pr_curve(out_dir / "pr_curve.csv", native)
            _write_per_image(out_dir / "per_image.csv", native, counts)
            _write_overlays(out_dir / "overlays", native, predicted, counts, params.worst_overlays)
    save_decision(model_dir, decision, "val", result["val"]["iou"])
    write_json(metrics_path, result)
    return result
