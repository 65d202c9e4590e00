"""The ship stage: the model the comparison recommends, as one self-contained folder.

The arm is the report's recommendation over all defects (``advice``): the highest pooled IoU
among the arms whose every run converged. Where no arm converged the report recommends none;
the arm with the highest pooled IoU ships then, and its card says in its first lines that it is
no recommendation (the pipeline still ends, so an experiment is kept and can be compared). Among that arm's runs (its folds and seeds) the one
with the highest val IoU ships, with its own decision (chosen on its own val). Every run of the
arm is a candidate measured on images it never trained on (its own test part), so the card
shows the choice beside the alternatives. With K folds an ensemble of the fold models, or a
model refit on every pair, would have no image left that none of it trained on: either could
only be measured on images it learned from, so neither is shipped.

The folder holds ``model.pt``, ``model.json`` and ``threshold.json`` (what ``defectseg predict``
and ``defectseg serve`` read), ``card.json`` (the figures below, for machines) and
``README.md`` (the model card). It is written whole or not at all (``atomic_dir``).
"""

import json
import shutil
from pathlib import Path

from defectseg.config.params import Params
from defectseg.data.sources import sha256_of
from defectseg.deploy.model_card import model_card
from defectseg.errors import DataError
from defectseg.foundation.atomic import atomic_dir, write_json, write_text
from defectseg.models.saved_model import METADATA, THRESHOLD, WEIGHTS

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


def ship_model(params: Params, comparison_path: Path, metrics_dir: Path, models_dir: Path, summary_path: Path, out_dir: Path) -> dict:
    """Write the recommended arm's chosen run into ``out_dir`` with its model card; return the card's figures."""
    comparison = json.loads(Path(comparison_path).read_text())
    arm, recommended = shipped_arm(comparison)
    rows = candidates(comparison, arm, metrics_dir)
    pick = chosen(rows)
    source = Path(models_dir) / pick["run"]
    model_name, loss_name = json.loads((source / METADATA).read_text())["architecture"]["model"], arm.split("-", 1)[1]
    card = {
        "arm": arm,
        "recommended": recommended,
        "model": model_name,
        "loss": loss_name,
        "run": pick["run"],
        "choice": "the one with the highest val IoU ships (each run's decision chosen on its own val)",
        "candidates": [{**row, "shipped": row["run"] == pick["run"]} for row in rows],
        "arm_figures": comparison["arms"][arm],
        "folds": comparison["folds"],
        "data": json.loads(Path(summary_path).read_text()),
        "weights_sha256": sha256_of(source / WEIGHTS),
    }
    with atomic_dir(out_dir) as folder:
        for name in (WEIGHTS, METADATA, THRESHOLD):
            if not (source / name).is_file():
                raise DataError(source / name, "missing: the run's train and evaluate stages write it")
            shutil.copy2(source / name, folder / name)
        write_json(folder / CARD, card)
        write_text(folder / "README.md", model_card(card, params))
    return card
