"""The loss comparison on the Magnetic Tile set, with configs/mtd.yaml, as a named DVC experiment.

Run: make mtd   (or: .venv/bin/python bench/mtd_comparison.py [MTD folder or zip, or "mtd"] [--name NAME])

Runs `dvc exp run --temp -n NAME` with the overrides of configs/mtd.yaml and the data
source as `-S` flags, so the experiment stays in this repository: `dvc exp show` lists
it, `dvc exp apply NAME` brings its trained models (and their decision files) out of the
DVC cache for `defectseg predict --model models/LOSS-seed0`, and `dvc exp push` shares
it. Then copies its report, figures, overlays and comparison.json into reports/mtd/
(git ignores the overlays: they show data-set images) and prints the table and the
wall time.
"""

import argparse
import json
import time
from pathlib import Path

import yaml

from defectseg.atomic import atomic_dir
from defectseg.experiments import files_in, read_file, run_experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="?", default="../shared/datasets/magnetic-tile")
    parser.add_argument("--name", default=f"mtd-{time.strftime('%Y%m%d-%H%M%S')}")
    args = parser.parse_args()
    source = args.source if args.source == "mtd" else str(Path(args.source).resolve())
    overrides = {**yaml.safe_load(Path("configs/mtd.yaml").read_text()), "data.source": source}
    start = time.perf_counter()
    ref = run_experiment(args.name, overrides)
    elapsed = time.perf_counter() - start
    with atomic_dir(Path("reports/mtd")) as out:
        for path in ["reports/report.md", "metrics/comparison.json", *files_in(ref, "reports/figures"), *files_in(ref, "reports/overlays")]:
            target = out / Path(path).relative_to(Path(path).parts[0])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(read_file(ref, path))
        (out / "wall_time.txt").write_text(f"{elapsed:.0f} s for dvc exp run (prepare to report), experiment {args.name}\n")
    table = json.loads(Path("reports/mtd/comparison.json").read_text())["losses"]
    print(f"MTD comparison: experiment {args.name}, {elapsed / 60:.1f} min wall time")
    print("test split, every figure at each image's own size")
    print(f"{'loss':8s} {'IoU':>6s} {'95% bootstrap':>16s} {'img IoU':>8s} {'recall':>7s} {'false al.':>9s} {'AUROC':>6s} {'R@FA':>6s}")
    for loss, row in table.items():
        interval = f"[{row['test_iou_bootstrap_low']:.3f}, {row['test_iou_bootstrap_high']:.3f}]"
        print(
            f"{loss:8s} {row['test_iou']:6.3f} {interval:>16s} {row['test_mean_image_iou']:8.3f} {row['test_detection_recall']:7.3f} "
            f"{row['test_false_alarm_rate']:9.3f} {row['test_image_auroc']:6.3f} {row['test_recall_at_false_alarm_rate']:6.3f}"
        )
    for key in ("test_per_class_iou", "test_per_class_mean_image_iou"):
        print(key, {loss: {c: round(v, 3) for c, v in row[key].items()} for loss, row in table.items()})
    print(f"report: reports/mtd/report.md; models: dvc exp apply {args.name}, then defectseg predict --model models/LOSS-seed0")


if __name__ == "__main__":
    main()
