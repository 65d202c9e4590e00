"""The report stage: one comparison of the losses, as DVC metrics and a Markdown page.

Reads every (loss, seed) run named in ``compare`` and writes:
- ``comparison.json``: the IoU table per loss (seed means), a DVC metric that
  ``dvc exp show`` and ``dvc metrics diff`` show;
- ``report.md`` with figures and overlays beside it, readable on GitHub as is.
"""

import itertools
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from defectseg.atomic import atomic_dir, write_json, write_text  # noqa: E402
from defectseg.errors import DataError  # noqa: E402
from defectseg.params import Params  # noqa: E402
from defectseg.statistics import bootstrap_interval, mean_interval, paired_bootstrap  # noqa: E402
from defectseg.stage import run_name  # noqa: E402

TABLE_COLUMNS = [
    ("iou", "test IoU"),
    ("mean_image_iou", "mean image IoU"),
    ("detection_recall", "detection R"),
    ("false_alarm_rate", "false alarms"),
    ("detection_precision", "detection P"),
    ("image_auroc", "image AUROC"),
    ("recall_at_false_alarm_rate", "R at FA rate"),
    ("dice", "Dice"),
    ("pixel_precision", "pixel P"),
    ("pixel_recall", "pixel R"),
    ("pixel_ap", "pixel AP"),
    ("miou_2class", "2-class mIoU"),
]


@dataclass(frozen=True)
class Run:
    """The evaluated outputs of one (loss, seed) run."""

    loss: str
    seed: int
    metrics: dict
    per_image: pd.DataFrame
    pr_curve: pd.DataFrame
    history: pd.DataFrame
    overlays: Path


def _read_tsv(path: Path, column: str) -> pd.Series:
    return pd.read_csv(path, sep="\t").set_index("step")[column]


def load_run(loss: str, seed: int, metrics_dir: Path, evaluation_dir: Path, live_dir: Path) -> Run:
    """Read one run's metrics, per-image counts, PR curve and training history."""
    name = run_name(loss, seed)
    metrics_path = Path(metrics_dir) / f"{name}.json"
    try:
        metrics = json.loads(metrics_path.read_text())
    except FileNotFoundError:
        raise DataError(metrics_path, f"run {name} has not been evaluated") from None
    plots = Path(live_dir) / name / "plots" / "metrics"
    history = pd.DataFrame(
        {
            "train_loss": _read_tsv(plots / "train" / "loss.tsv", "loss"),
            "val_loss": _read_tsv(plots / "val" / "loss.tsv", "loss"),
            "val_iou": _read_tsv(plots / "val" / "iou.tsv", "iou"),
        }
    )
    folder = Path(evaluation_dir) / name
    return Run(
        loss,
        seed,
        metrics,
        pd.read_csv(folder / "per_image.csv", dtype={"id": str}),
        pd.read_csv(folder / "pr_curve.csv"),
        history,
        folder / "overlays",
    )


def comparison_table(runs: list[Run], confidence: float, samples: int, seed: int) -> dict:
    """Per loss: seed-mean of each metric on test and train, with intervals where seeds allow,
    and a bootstrap interval of the test IoU over test images (seeds pooled)."""
    table = {}
    for loss, group in itertools.groupby(runs, key=lambda r: r.loss):
        group = list(group)
        row = {"seeds": len(group), "threshold": float(np.mean([r.metrics["threshold"] for r in group]))}
        low, high = bootstrap_interval(_pooled_counts(group), samples, seed, confidence)
        row["test_iou_bootstrap_low"], row["test_iou_bootstrap_high"] = low, high
        row["test_images"] = int(len(group[0].per_image))
        row["test_defect_images"] = int(((group[0].per_image["tp"] + group[0].per_image["fn"]) > 0).sum())
        for split in ("test", "train"):
            for key, _ in TABLE_COLUMNS:
                values = [r.metrics[split][key] for r in group if r.metrics[split][key] is not None]
                if not values:
                    continue
                mean, half = mean_interval(values, confidence)
                row[f"{split}_{key}"] = mean
                if half is not None:
                    row[f"{split}_{key}_ci"] = half
        for key in ("per_class_iou", "per_class_mean_image_iou"):
            row[f"test_{key}"] = _seed_mean_per_class([r.metrics["test"][key] for r in group])
        table[loss] = row
    return table


def _seed_mean_per_class(per_seed: list[dict[str, float]]) -> dict[str, float]:
    classes = sorted({c for values in per_seed for c in values})
    return {c: float(np.mean([values[c] for values in per_seed if c in values])) for c in classes}


def _pooled_counts(group: list[Run]) -> dict[str, np.ndarray]:
    """Per-image counts summed over a loss's seeds, in image-id order."""
    frames = [r.per_image.sort_values("id").reset_index(drop=True) for r in group]
    return {k: sum(f[k].to_numpy() for f in frames) for k in ("tp", "fp", "fn")}


def pairwise_bootstrap(runs: list[Run], samples: int, seed: int, confidence: float) -> dict[str, dict]:
    """A paired bootstrap of test IoU for every pair of losses, keyed ``<a>_vs_<b>``."""
    by_loss = {loss: list(group) for loss, group in itertools.groupby(runs, key=lambda r: r.loss)}
    return {
        f"{a}_vs_{b}": paired_bootstrap(_pooled_counts(by_loss[a]), _pooled_counts(by_loss[b]), samples, seed, confidence)
        for a, b in itertools.combinations(by_loss, 2)
    }


def _plot_training(runs: list[Run], path: Path) -> None:
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        label = run_name(run.loss, run.seed)
        epochs = run.history.index + 1
        validated = run.history["val_iou"].dropna()
        left.plot(validated.index + 1, validated, label=label)
        right.plot(epochs, run.history["train_loss"] / run.history["train_loss"].iloc[0], label=label)
    left.set(title="val defect IoU (best threshold)", xlabel="epoch", ylabel="IoU")
    right.set(title="train loss / first-epoch train loss", xlabel="epoch", ylabel="relative loss")
    left.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _plot_pr(runs: list[Run], path: Path) -> None:
    figure, axes = plt.subplots(figsize=(5.5, 4.5))
    for run in runs:
        ap = run.metrics["test"]["pixel_ap"]
        axes.plot(run.pr_curve["recall"], run.pr_curve["precision"], label=f"{run_name(run.loss, run.seed)} (AP {ap:.3f})")
    axes.set(title="test pixel precision-recall", xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _cell(row: dict, key: str) -> str:
    if key not in row:
        return "n/a"
    half = row.get(f"{key}_ci")
    return f"{row[key]:.3f} ± {half:.3f}" if half is not None else f"{row[key]:.3f}"


def _header_lines(params: Params, data_summary: dict) -> list[str]:
    seeds = len(params.compare.seeds)
    height, width = params.preprocess.height_width
    evaluate = params.evaluate
    return [
        "# Loss comparison",
        "",
        f"Data: {data_summary['layout']} source, {data_summary['pairs']} pairs "
        f"(train {data_summary['per_split']['train']}, val {data_summary['per_split']['val']}, "
        f"test {data_summary['per_split']['test']}). The model sees each image resized to {height}x{width}. "
        f"Model: `{params.train.model}`"
        + (f" at 1/{params.train.downscale} resolution" if params.train.downscale > 1 else "")
        + (f", refined by a {params.train.refine.width}-channel full-resolution branch" if params.train.refine.width else "")
        + f", {params.train.epochs} epochs, {params.train.precision}. "
        f"Seeds: {', '.join(map(str, params.compare.seeds))}.",
        "",
        "**Every figure is measured at each image's own size**: the probability map is resized back "
        "to the original image and compared with the original mask, as `defectseg predict` writes it.",
        "",
        "The decision of each run is chosen on the val split and then applied unchanged to test and train: "
        "the pixel threshold that maximises global defect IoU, and an image gate (images whose highest "
        "defect probability is under it get an empty mask) that lets at most "
        f"{evaluate.max_false_alarm_rate:.0%} of val's defect-free images through. "
        + (f"Predicted regions smaller than {evaluate.min_region_share:.2%} of the image area are dropped. " if evaluate.min_region_share else "")
        + ("Probabilities are averaged over the image and its horizontal and vertical mirror images. " if evaluate.flip_tta else "")
        + (f"Cells show the mean over {seeds} seeds ± the half-width of its {int(params.report.confidence * 100)}% t-interval." if seeds > 1 else "One seed: no interval over seeds."),
        "",
    ]


def _test_table_lines(table: dict, confidence: int) -> list[str]:
    first = next(iter(table.values()))
    lines = [
        "## Test split",
        "",
        f"{first['test_images']} test images, {first['test_defect_images']} of them with defects. "
        f"The bootstrap column is the {confidence}% interval of test IoU over resampled test images.",
        "",
        "| loss | " + " | ".join(title for _, title in TABLE_COLUMNS) + f" | test IoU {confidence}% bootstrap | train IoU | threshold |",
        "|---|" + "---:|" * (len(TABLE_COLUMNS) + 3),
    ]
    for loss, row in table.items():
        cells = [_cell(row, f"test_{key}") for key, _ in TABLE_COLUMNS]
        interval = f"[{row['test_iou_bootstrap_low']:.3f}, {row['test_iou_bootstrap_high']:.3f}]"
        lines.append(f"| {loss} | " + " | ".join(cells) + f" | {interval} | {_cell(row, 'train_iou')} | {row['threshold']:.2f} |")
    return lines


def _bootstrap_lines(bootstrap: dict[str, dict], samples: int, confidence: int) -> list[str]:
    lines = [
        "",
        f"## Is the difference real? Paired bootstrap over test images ({samples} resamples)",
        "",
        f"| comparison | test IoU difference | {confidence}% interval | significant |",
        "|---|---:|---:|---|",
    ]
    for key, pair in bootstrap.items():
        a, b = key.split("_vs_")
        verdict = "yes" if pair["significant"] else "no"
        lines.append(f"| {a} − {b} | {pair['difference']:+.3f} | [{pair['low']:+.3f}, {pair['high']:+.3f}] | {verdict} |")
    return lines


def _per_class_lines(table: dict, key: str, title: str) -> list[str]:
    classes = sorted({c for row in table.values() for c in row[key]})
    lines = ["", f"## {title}", "", "| loss | " + " | ".join(classes) + " |", "|---|" + "---:|" * len(classes)]
    for loss, row in table.items():
        lines.append(f"| {loss} | " + " | ".join(f"{row[key][c]:.3f}" if c in row[key] else "n/a" for c in classes) + " |")
    return lines


def _picture_lines(runs: list[Run], first_seed: int) -> list[str]:
    lines = [
        "",
        "## Training curves",
        "",
        "![training curves](figures/training_curves.png)",
        "",
        "## Precision-recall on test pixels",
        "",
        "![precision-recall curves](figures/pr_curves.png)",
        "",
        "## Worst test images",
        "",
        "Each picture: image | truth (green) | prediction: true positives green, false positives red, "
        "false negatives blue. Lowest per-image IoU first, among images with any error.",
        "",
    ]
    for run in runs:
        if run.seed != first_seed:
            continue
        name = run_name(run.loss, run.seed)
        pictures = sorted(run.overlays.glob("*.png"))
        lines += [f"### {name}", ""]
        lines += [f"![{p.stem}](overlays/{name}/{p.name})" for p in pictures] or ["No test image has an error."]
        lines.append("")
    return lines


DEFINITIONS = [
    "## Definitions",
    "",
    "All figures are counted at each image's original size.",
    "",
    "- **test IoU**: global defect IoU, with intersection and union summed over every test image "
    "(defect-free ones included, so false alarms count). Large defects dominate it.",
    "- **mean image IoU**: IoU per image, averaged over the images that have defects (each defect image counts once).",
    "- **detection R**: share of defective images whose predicted mask has any defect pixel (image-level recall).",
    "- **false alarms**: share of defect-free images with any predicted defect pixel.",
    "- **detection P**: image-level precision of \"has a defect\".",
    "- **image AUROC**: area under the ROC curve of the image score (highest defect probability) for \"has a defect\".",
    "- **R at FA rate**: the highest image-level recall any image-score threshold reaches while flagging at most "
    "`evaluate.max_false_alarm_rate` of the defect-free images (threshold-free, read off the split's own ROC).",
    "- **Dice**: global pixel F1 of the defect class. **pixel P / R**: global pixel precision and recall.",
    "- **pixel AP**: average precision of the pixel probabilities (binned into 1000 steps), independent of the threshold.",
    "- **2-class mIoU**: mean of background IoU and defect IoU; background dominates it, so it reads high.",
    "- Empty cases: IoU and Dice are 1 when truth and prediction are both empty; precision is 1 when nothing is "
    "predicted, recall is 1 when there is nothing to find.",
    "",
]


def render_markdown(table: dict, bootstrap: dict[str, dict], runs: list[Run], params: Params, data_summary: dict) -> str:
    """The report page; figures and overlays are linked relative to it."""
    confidence = int(params.report.confidence * 100)
    lines = _header_lines(params, data_summary) + _test_table_lines(table, confidence)
    lines += _bootstrap_lines(bootstrap, params.report.bootstrap_samples, confidence)
    lines += _per_class_lines(table, "test_per_class_iou", "Test IoU per defect class (pooled within the class)")
    lines += _per_class_lines(table, "test_per_class_mean_image_iou", "Test mean image IoU per defect class")
    lines += _picture_lines(runs, params.compare.seeds[0])
    return "\n".join(lines + DEFINITIONS)


def build_report(params: Params, metrics_dir: Path, evaluation_dir: Path, live_dir: Path, data_summary_path: Path, report_dir: Path, comparison_path: Path) -> dict:
    """Write the comparison metric and the report folder; return the comparison table."""
    runs = [
        load_run(loss, seed, metrics_dir, evaluation_dir, live_dir)
        for loss in params.compare.losses
        for seed in params.compare.seeds
    ]
    table = comparison_table(runs, params.report.confidence, params.report.bootstrap_samples, params.report.bootstrap_seed)
    bootstrap = pairwise_bootstrap(runs, params.report.bootstrap_samples, params.report.bootstrap_seed, params.report.confidence)
    data_summary = json.loads(Path(data_summary_path).read_text())
    report_dir = Path(report_dir)
    with atomic_dir(report_dir / "figures") as figures:
        _plot_training(runs, figures / "training_curves.png")
        _plot_pr(runs, figures / "pr_curves.png")
    with atomic_dir(report_dir / "overlays") as overlays:
        for run in runs:
            if run.seed == params.compare.seeds[0] and run.overlays.is_dir():
                shutil.copytree(run.overlays, overlays / run_name(run.loss, run.seed))
    write_text(report_dir / "report.md", render_markdown(table, bootstrap, runs, params, data_summary))
    write_json(comparison_path, {"losses": table, "bootstrap": bootstrap})
    return table
