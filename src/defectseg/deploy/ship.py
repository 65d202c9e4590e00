"""The ship stage: the model the comparison recommends, as one self-contained folder.

The arm is the report's recommendation over all defects (``advice``): the highest pooled IoU
among the arms whose every run converged. Where no arm converged the report recommends none;
the arm with the highest pooled IoU ships then, and its card says in its first lines that it is
no recommendation (the pipeline still ends, so an experiment is kept and can be compared).

What ships of that arm:
- with one split, its run with the highest val IoU, with its own decision (chosen on its val);
- with K folds, the ensemble of all its runs (every fold and seed), averaged at the probability
  map (``models.ensemble``), so that every group of the data set trained the shipped model.
  Cross-validation measured the *procedure* (this recipe, trained on (K-1)/K of the groups,
  tested on groups it never saw); the card quotes those figures, by group, as the estimate for
  the ensemble, which averages K such models and so, as ensembles do, does at least about as
  well as its members. No image is left that none of its members trained on, so the ensemble
  itself is not measured. Its decision is the median over its runs of each run's decision (the
  pixel threshold and the image gate's threshold, each chosen on that run's val). Chosen over a
  refit on all pairs because it costs no training: the fold models exist when the report does.

The folder holds ``model.pt``, ``model.json`` and ``threshold.json`` (what ``defectseg predict``
and ``defectseg serve`` read), ``card.json`` (the figures below, for machines) and
``README.md`` (the model card). It is written whole or not at all (``atomic_dir``).
"""

import json
import shutil
from pathlib import Path

import numpy as np

from defectseg.config.params import Params
from defectseg.data.sources import sha256_of
from defectseg.deploy.model_card import model_card
from defectseg.errors import DataError
from defectseg.foundation.atomic import atomic_dir, write_json, write_text
from defectseg.measures.decision import Decision
from defectseg.models.model_format import METADATA, THRESHOLD, WEIGHTS
from defectseg.models.saved_model import load_decision, save_decision, save_ensemble

CARD = "card.json"
# the figures of a run's split that the card shows
FIGURES = ("iou", "mean_image_iou", "detection_recall", "false_alarm_rate", "per_class_iou", "images")


def shipped_arm(comparison: dict) -> tuple[str, bool]:
    """The arm the report recommends over all defects and True; where it recommends none (no arm
    converged), the arm with the highest pooled IoU and False."""
    best = comparison["advice"]["all defects"]["best"]
    if best is not None:
        return best, True
    return max(comparison["arms"], key=lambda arm: comparison["arms"][arm]["iou"]), False


def candidates(comparison: dict, arm: str, metrics_dir: Path) -> list[dict]:
    """Every run of ``arm``: its fold and seed, convergence, and its val and test figures."""
    rows = []
    for name, run in sorted(comparison["runs"].items()):
        if not name.startswith(f"{arm}-seed"):
            continue
        path = Path(metrics_dir) / f"{name}.json"
        try:
            metrics = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(path, f"the run's metrics cannot be read ({exc})") from None
        rows.append({
            "run": name, "fold": metrics["fold"], "status": run["status"],
            "val": {key: metrics["val"][key] for key in FIGURES}, "test": {key: metrics["test"][key] for key in FIGURES},
        })  # fmt: skip
    return rows


def chosen(rows: list[dict]) -> dict:
    """The candidate with the highest val IoU (the first by name on a tie): chosen on val only."""
    return max(rows, key=lambda row: row["val"]["iou"])


def median_decision(folders: list[Path]) -> Decision:
    """One decision for an ensemble of ``folders``: the median of their pixel thresholds and image
    gates (each chosen on its run's val); the rest (smallest region, TTA, image score) is shared."""
    decisions = []
    for folder in folders:
        decision = load_decision(folder)
        if decision is None:
            raise DataError(Path(folder) / THRESHOLD, "missing: the run's train and evaluate stages write it")
        decisions.append(decision)
    first = decisions[0]
    return Decision(
        float(np.median([d.threshold for d in decisions])),
        first.min_region_share,
        float(np.median([d.image_threshold for d in decisions])),
        first.flip_tta,
        first.score_top_share,
        first.head_score,
    )


def _copy_run(source: Path, folder: Path) -> None:
    for name in (WEIGHTS, METADATA, THRESHOLD):
        if not (source / name).is_file():
            raise DataError(source / name, "missing: the run's train and evaluate stages write it")
        shutil.copy2(source / name, folder / name)


def ship_model(params: Params, comparison_path: Path, metrics_dir: Path, models_dir: Path, summary_path: Path, out_dir: Path) -> dict:
    """Write what ships of the recommended arm into ``out_dir`` with its model card (its chosen run
    with one split, the ensemble of its runs with several folds); return the card's figures."""
    comparison = json.loads(Path(comparison_path).read_text())
    arm, recommended = shipped_arm(comparison)
    rows = candidates(comparison, arm, metrics_dir)
    ensemble = comparison["folds"] > 1 and len(rows) > 1
    shipped = [row["run"] for row in rows] if ensemble else [chosen(rows)["run"]]
    sources = [Path(models_dir) / run for run in shipped]
    model_name, loss_name = json.loads((sources[0] / METADATA).read_text())["architecture"]["model"], arm.split("-", 1)[1]
    card = {
        "arm": arm,
        "recommended": recommended,
        "model": model_name,
        "loss": loss_name,
        "run": f"ensemble of {len(shipped)} runs" if ensemble else shipped[0],
        "members": shipped,
        "choice": (
            "all of them ship as one ensemble (every group trained some member), its decision the median of theirs"
            if ensemble
            else "the one with the highest val IoU ships (each run's decision chosen on its own val)"
        ),
        "candidates": [{**row, "shipped": row["run"] in shipped} for row in rows],
        "arm_figures": comparison["arms"][arm],
        "folds": comparison["folds"],
        "data": json.loads(Path(summary_path).read_text()),
    }
    with atomic_dir(out_dir) as folder:
        if ensemble:
            save_ensemble(folder, sources, across_folds=True)
            save_decision(folder, median_decision(sources), "the median of the members' decisions, each chosen on its run's val", None)
        else:
            _copy_run(sources[0], folder)
        card["weights_sha256"] = sha256_of(folder / WEIGHTS)
        write_json(folder / CARD, card)
        write_text(folder / "README.md", model_card(card, params))
    return card
