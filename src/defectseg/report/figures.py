"""The report's figures: training curves and test pixel precision-recall curves."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: draw to files

import matplotlib.pyplot as plt  # noqa: E402

from defectseg.report.run_outputs import RunOutputs  # noqa: E402


def plot_training(outputs: list[RunOutputs], path: Path) -> None:
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for output in outputs:
        label, history = output.run.name, output.history
        validated = history["val_iou"].dropna()
        left.plot(validated.index + 1, validated, label=label)
        right.plot(history.index + 1, history["train_loss"] / history["train_loss"].iloc[0], label=label)
    left.set(title="val defect IoU (best threshold)", xlabel="epoch", ylabel="IoU")
    right.set(title="train loss / first-epoch train loss", xlabel="epoch", ylabel="relative loss")
    left.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def plot_pr(outputs: list[RunOutputs], path: Path) -> None:
    figure, axes = plt.subplots(figsize=(5.5, 4.5))
    for output in outputs:
        ap = output.metrics["test"]["pixel_ap"]
        axes.plot(output.pr_curve["recall"], output.pr_curve["precision"], label=f"{output.run.name} (AP {ap:.3f})")
    axes.set(title="test pixel precision-recall", xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
