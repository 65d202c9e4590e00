"""What the report reads of one run: its metrics, per-image table, PR curve, training history and overlays."""

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from defectseg.config.runs import Run
from defectseg.errors import DataError


@dataclass(frozen=True)
class RunOutputs:
    """The evaluated outputs of one run of the matrix."""

    run: Run
    metrics: dict
    per_image: pd.DataFrame
    pr_curve: pd.DataFrame
    history: pd.DataFrame
    overlays: Path
    cost: dict


def _read_tsv(path: Path, column: str) -> pd.Series:
    return pd.read_csv(path, sep="\t").set_index("step")[column]


def load_run(run: Run, metrics_dir: Path, evaluation_dir: Path, live_dir: Path) -> RunOutputs:
    """Read one run's metrics, per-image test counts, PR curve and training history."""
    metrics_path = Path(metrics_dir) / f"{run.name}.json"
    try:
        metrics = json.loads(metrics_path.read_text())
    except FileNotFoundError:
        raise DataError(metrics_path, f"run {run.name} has not been evaluated") from None
    plots = Path(live_dir) / run.name / "plots" / "metrics"
    history = pd.DataFrame(
        {
            "train_loss": _read_tsv(plots / "train" / "loss.tsv", "loss"),
            "val_loss": _read_tsv(plots / "val" / "loss.tsv", "loss"),
            "val_iou": _read_tsv(plots / "val" / "iou.tsv", "iou"),
        }
    )
    folder = Path(evaluation_dir) / run.name
    per_image = pd.read_csv(folder / "per_image.csv", dtype={"id": str})
    summary_path = Path(live_dir) / run.name / "metrics.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    cost = {key.removeprefix("cost/"): value for key, value in summary.items() if key.startswith("cost/")}
    return RunOutputs(run, metrics, per_image, pd.read_csv(folder / "pr_curve.csv"), history, folder / "overlays", cost)
