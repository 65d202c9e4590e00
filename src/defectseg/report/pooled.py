"""Out-of-fold pooling: each (model, loss) arm's test predictions from every fold, measured as one.

With K-fold cross-validation every image is tested exactly once per seed, by the run
that did not train on it, so an arm's pooled figures cover the whole data set; with a
single split they cover its test split. Pairs of arms are compared by a paired
bootstrap over the groups (one physical object each, ``statistics``), losses within each
model and models within each loss: over all images, and within each defect class that
has at least ``MIN_CLASS_IMAGES`` defective images from at least ``MIN_CLASS_GROUPS``
groups (fewer cannot carry a bootstrap interval; the report says the data cannot tell).
``advice`` turns a class's comparisons into which arm to use for it.
"""

import itertools
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from defectseg.config.runs import Run
from defectseg.measures.metrics import (
    Counts,
    detection_precision_recall,
    false_alarm_rate,
    global_iou,
    image_auroc,
    mean_defect_image_iou,
    per_class_iou,
    per_class_mean_image_iou,
    per_class_recall,
    recall_at_false_alarm_rate,
)
from defectseg.report.statistics import ImageTotals, bootstrap_intervals, paired_bootstrap, pooled_iou

COUNT_COLUMNS = ["tp", "fp", "fn", "tn"]
MIN_CLASS_IMAGES = 20
MIN_CLASS_GROUPS = 5


@dataclass(frozen=True)
class ArmImages:
    """An arm's test predictions, one row per (image, seed), sorted by seed then id, each with its group."""

    rows: pd.DataFrame
    seeds: int

    @cached_property
    def counts(self) -> Counts:
        return Counts(*(self.rows[c].to_numpy() for c in COUNT_COLUMNS))

    @cached_property
    def totals(self) -> ImageTotals:
        """Per image (sorted by id), summed over seeds."""
        rows = self.rows.assign(flagged=(self.rows["tp"] + self.rows["fp"]) > 0)
        per_image = rows.groupby("id", sort=True)[["tp", "fp", "fn", "flagged"]].sum()
        has_defect = rows.groupby("id", sort=True)[["tp", "fn"]].sum().sum(axis=1) > 0
        group = rows.groupby("id", sort=True)["group"].first().to_numpy(str)
        return ImageTotals(*(per_image[c].to_numpy() for c in ("tp", "fp", "fn", "flagged")), has_defect.to_numpy(), self.seeds, group)

    @cached_property
    def image_classes(self) -> np.ndarray:
        """Each image's defect class, in the order of ``totals``."""
        return self.rows.groupby("id", sort=True)["defect_class"].first().to_numpy(str)


def pool_arms(per_image: dict[Run, pd.DataFrame], groups: dict[str, str] | None = None) -> dict[str, ArmImages]:
    """Each arm's per-image test rows over its folds and seeds, each image with its group
    from ``groups`` (id to group; None: each image is its own group).

    Raises ``ValueError`` if a seed tests an image twice, if an image has no group, or if
    the arms cover different images.
    """
    arms: dict[str, list[pd.DataFrame]] = {}
    for run, table in per_image.items():
        group = table["id"].astype(str) if groups is None else table["id"].astype(str).map(groups)
        if group.isna().any():
            raise ValueError(f"{run.name}: image {table.loc[group.isna(), 'id'].iloc[0]} has no group in the manifest")
        arms.setdefault(run.arm, []).append(table.assign(seed=run.seed, fold=run.fold, group=group))
    pooled = {}
    for arm, tables in arms.items():
        rows = pd.concat(tables, ignore_index=True).sort_values(["seed", "id"], kind="stable").reset_index(drop=True)
        repeated = rows.duplicated(["seed", "id"])
        if repeated.any():
            raise ValueError(f"{arm}: image {rows.loc[repeated, 'id'].iloc[0]} is tested in more than one fold")
        pooled[arm] = ArmImages(rows, rows["seed"].nunique())
    covered = {arm: frozenset(images.rows["id"]) for arm, images in pooled.items()}
    if len(set(covered.values())) > 1:
        raise ValueError(f"arms test different images: {', '.join(f'{a} {len(ids)}' for a, ids in covered.items())}")
    return pooled


def pooled_metrics(arm: ArmImages, false_alarm_budget: float, samples: int, seed: int, confidence: float) -> dict:
    """The arm's pooled figures, with bootstrap intervals over images for IoU, recall and false alarms."""
    counts = arm.counts
    scores = arm.rows["score"].to_numpy()
    classes = arm.rows["defect_class"].to_numpy(str)
    precision, recall = detection_precision_recall(counts)
    intervals = bootstrap_intervals(arm.totals, samples, seed, confidence)
    defect_image = defect_image_iou(arm.totals, samples, seed, confidence)
    return {
        "images": int(arm.rows["id"].nunique()),
        "groups": arm.totals.groups,
        "defect_images": int(arm.rows.loc[counts.has_defect, "id"].nunique()),
        "defect_groups": arm.totals.select(arm.totals.has_defect).groups,
        "seeds": arm.seeds,
        "iou": global_iou(counts),
        "iou_interval": intervals["iou"],
        "defect_image_iou": defect_image[0],
        "defect_image_iou_interval": defect_image[1],
        "mean_image_iou": mean_defect_image_iou(counts),
        "detection_recall": recall,
        "detection_recall_interval": intervals["recall"],
        "false_alarm_rate": false_alarm_rate(counts),
        "false_alarm_rate_interval": intervals["false_alarms"],
        "detection_precision": precision,
        "image_auroc": image_auroc(scores, counts.has_defect),
        "recall_at_false_alarm_rate": recall_at_false_alarm_rate(scores, counts.has_defect, false_alarm_budget),
        "per_class_iou": per_class_iou(counts, classes),
        "per_class_mean_image_iou": per_class_mean_image_iou(counts, classes),
        "per_class_recall": per_class_recall(counts, classes),
    }


def defect_image_iou(totals: ImageTotals, samples: int, seed: int, confidence: float) -> tuple[float | None, tuple]:
    """Pooled IoU over the defective images only, with its bootstrap interval over them: the
    figure without the defect-free tiles' false positives (None where no image has a defect)."""
    defective = totals.select(totals.has_defect)
    if not defective.has_defect.any():
        return None, (None, None)
    return pooled_iou(defective), bootstrap_intervals(defective, samples, seed, confidence)["iou"]


def verdict_line(a: str, b: str, result: dict, confidence: float) -> str:
    """One plain sentence: which of ``a`` and ``b`` has the higher IoU, by how much, and whether that is real."""
    percent = f"{confidence:.0%}"
    if not result["significant"]:
        return f"{a} vs {b}: no difference detected ({result['difference']:+.3f} IoU, {percent} CI [{result['low']:+.3f}, {result['high']:+.3f}])"
    if result["difference"] > 0:
        return f"{a} beats {b} by {result['difference']:+.3f} IoU, {percent} CI [{result['low']:+.3f}, {result['high']:+.3f}]"
    return f"{b} beats {a} by {-result['difference']:+.3f} IoU, {percent} CI [{-result['high']:+.3f}, {-result['low']:+.3f}]"


def verdicts(totals: dict[str, ImageTotals], runs: list[Run], samples: int, seed: int, confidence: float) -> list[dict]:
    """Paired comparisons of the arms' ``totals`` (the same images in each): every pair of
    losses within each model, then every pair of models within each loss."""
    models = list(dict.fromkeys(r.model for r in runs))
    losses = list(dict.fromkeys(r.loss for r in runs))
    pairs = [("loss", model, f"{model}-{a}", f"{model}-{b}", a, b) for model in models for a, b in itertools.combinations(losses, 2)]
    pairs += [("model", loss, f"{a}-{loss}", f"{b}-{loss}", a, b) for loss in losses for a, b in itertools.combinations(models, 2)]
    result = []
    for axis, fixed, arm_a, arm_b, label_a, label_b in pairs:
        outcome = paired_bootstrap(totals[arm_a], totals[arm_b], samples, seed, confidence)
        line = verdict_line(label_a, label_b, outcome, confidence) + f" ({'model' if axis == 'loss' else 'loss'} {fixed})"
        result.append({"axis": axis, "a": arm_a, "b": arm_b, **outcome, "verdict": line})
    return result


def class_totals(arms: dict[str, ArmImages]) -> dict[str, dict[str, ImageTotals]]:
    """Per defect class, each arm's totals on that class's defective images only."""
    first = next(iter(arms.values()))
    classes, has_defect = first.image_classes, first.totals.has_defect
    members = {name: (classes == name) & has_defect for name in sorted(set(classes[has_defect].tolist()))}
    return {name: {arm: images.totals.select(mask) for arm, images in arms.items()} for name, mask in members.items()}


def images_in(totals: dict[str, ImageTotals]) -> int:
    """How many images each arm's ``totals`` hold (the same for every arm)."""
    return len(next(iter(totals.values())).tp)


def groups_in(totals: dict[str, ImageTotals]) -> int:
    """How many groups each arm's ``totals`` hold (the same for every arm)."""
    return next(iter(totals.values())).groups


def enough_to_compare(totals: dict[str, ImageTotals]) -> bool:
    """Whether a class has the defective images and groups a bootstrap interval needs."""
    return images_in(totals) >= MIN_CLASS_IMAGES and groups_in(totals) >= MIN_CLASS_GROUPS


def class_verdicts(arms: dict[str, ArmImages], runs: list[Run], samples: int, seed: int, confidence: float) -> dict[str, dict]:
    """Per defect class: its defective images' and groups' counts and, where there are
    enough (``enough_to_compare``), the same paired comparisons as ``verdicts`` on those images only."""
    result = {}
    for name, subset in class_totals(arms).items():
        judged = verdicts(subset, runs, samples, seed, confidence) if enough_to_compare(subset) else []
        result[name] = {"images": images_in(subset), "groups": groups_in(subset), "verdicts": judged}
    return result


def class_advice(arms: dict[str, ArmImages], settled: list[str], samples: int, seed: int, confidence: float) -> dict[str, dict]:
    """``advice`` over all defects (``images`` None) and for each class with at least ``MIN_CLASS_IMAGES`` defective images."""
    everything = {arm: images.totals for arm, images in arms.items()}
    result = {"all defects": {"images": None, "groups": None, **advice(everything, settled, samples, seed, confidence)}}
    for name, subset in class_totals(arms).items():
        enough = enough_to_compare(subset)
        result[name] = {"images": images_in(subset), "groups": groups_in(subset), **advice(subset, settled if enough else [], samples, seed, confidence)}
    return result


def advice(totals: dict[str, ImageTotals], settled: list[str], samples: int, seed: int, confidence: float) -> dict:
    """Which of the ``settled`` arms to use on these images: the one with the highest IoU, the
    arms it beats (paired bootstrap), those the data cannot tell from it, and the unsettled
    arms (still learning or stalled) that scored higher than it, so that the advice does not
    hide a better arm that has not finished."""
    if not settled:
        return {"best": None, "beats": [], "cannot_tell": [], "higher_unsettled": {}}
    iou = {arm: pooled_iou(arm_totals) for arm, arm_totals in totals.items()}
    best = max(settled, key=lambda arm: (iou[arm], arm))
    beats, cannot_tell = [], []
    for arm in settled:
        if arm != best:
            outcome = paired_bootstrap(totals[best], totals[arm], samples, seed, confidence)
            (beats if outcome["significant"] and outcome["difference"] > 0 else cannot_tell).append(arm)
    higher = {arm: iou[arm] for arm in sorted(totals, key=lambda a: -iou[a]) if arm not in settled and iou[arm] > iou[best]}
    return {"best": best, "iou": iou[best], "beats": beats, "cannot_tell": cannot_tell, "higher_unsettled": higher}


def mean_over_seeds(values: list[float | None]) -> float | None:
    """Mean of the values that exist (a run with nothing to measure reports None)."""
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None
