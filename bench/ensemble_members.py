"""Benchmark: an ensemble against each of its members, on the same test images (those none of them trained on).

Run, in a checkout of the experiment whose runs are the members (``dvc exp apply NAME``, or a
git worktree at its commit with ``dvc checkout``), after ``defectseg ensemble ... --out DIR --evaluate``:
    .venv/bin/python bench/ensemble_members.py DIR [--evaluation evaluation]
Reads the ensemble's ``DIR/evaluation/per_image.csv`` and each member's
``evaluation/<run>/per_image.csv`` (the evaluate stage's), and prints, for each: pooled IoU with
its bootstrap interval, the defect images' IoU, image recall and false alarms, IoU per class, and
the member's val IoU (``metrics/runs/<run>.json``); then the paired bootstrap of the ensemble
against the member with the best val IoU (the one a user would have picked without the
ensemble) and against the member with the best test IoU (the hardest comparison).
"""

import argparse
import json
from pathlib import Path

import pandas as pd

from defectseg.report.pooled import ArmImages, pooled_metrics
from defectseg.report.statistics import paired_bootstrap, pooled_iou

SAMPLES, SEED, CONFIDENCE = 2000, 0, 0.95


def arm_images(per_image: Path) -> ArmImages:
    rows = pd.read_csv(per_image, dtype={"id": str}).assign(seed=0).sort_values("id").reset_index(drop=True)
    return ArmImages(rows, 1)


def row(name: str, images: ArmImages, val_iou: float | None) -> tuple[str, dict]:
    figures = pooled_metrics(images, 0.05, SAMPLES, SEED, CONFIDENCE)
    classes = " ".join(f"{k} {v:.3f}" for k, v in figures["per_class_iou"].items())
    low, high = figures["iou_interval"]
    val = "n/a" if val_iou is None else f"{val_iou:.3f}"
    line = (f"{name:40s} val {val}  test IoU {figures['iou']:.3f} [{low:.3f}, {high:.3f}]  defect images {figures['defect_image_iou']:.3f}  "
            f"recall {figures['detection_recall']:.3f}  false alarms {figures['false_alarm_rate']:.3f}  {classes}")  # fmt: skip
    return line, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ensemble", type=Path, help="the ensemble's folder, evaluated (defectseg ensemble --evaluate)")
    parser.add_argument("--evaluation", type=Path, default=Path("evaluation"), help="the evaluate stage's folder of per-run results")
    parser.add_argument("--metrics", type=Path, default=Path("metrics/runs"), help="the evaluate stage's per-run metrics (val IoU)")
    args = parser.parse_args()
    members = [Path(m).name for m in json.loads((args.ensemble / "model.json").read_text())["members"]]
    ensemble = arm_images(args.ensemble / "evaluation" / "per_image.csv")
    line, _ = row("ensemble", ensemble, json.loads((args.ensemble / "metrics.json").read_text())["val"]["iou"])
    print(line)
    tested, val = {}, {}
    for member in members:
        tested[member] = arm_images(args.evaluation / member / "per_image.csv")
        val[member] = json.loads((args.metrics / f"{member}.json").read_text())["val"]["iou"]
        if list(tested[member].rows["id"]) != list(ensemble.rows["id"]):
            raise SystemExit(f"{member}: tests other images than the ensemble")
        line, _ = row(member, tested[member], val[member])
        print(line)
    by_val = max(members, key=lambda m: val[m])
    by_test = max(members, key=lambda m: pooled_iou(tested[m].totals))
    for label, member in (("best val member", by_val), ("best test member", by_test)):
        outcome = paired_bootstrap(ensemble.totals, tested[member].totals, SAMPLES, SEED, CONFIDENCE)
        print(f"ensemble - {label} ({member}): {outcome['difference']:+.3f} IoU, {CONFIDENCE:.0%} CI [{outcome['low']:+.3f}, {outcome['high']:+.3f}]"
              f"{'' if outcome['significant'] else ' (no difference detected)'}")  # fmt: skip


if __name__ == "__main__":
    main()
