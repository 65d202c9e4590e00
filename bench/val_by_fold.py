"""Each run's val figures of one or more comparisons (``defectseg compare`` experiments), fold by fold,
to choose a lever on val over folds before looking at its test figures once.

    python bench/val_by_fold.py mtd-20261207-052430 mtd-gate-point-20261207-070000

For each experiment it reads ``dvc.lock`` from the experiment's git ref and each run's
``metrics/runs/RUN.json`` from the DVC cache (where ``dvc exp run`` left it), and prints per run
the val part's pooled IoU, defect-image mean IoU, image recall and false alarms with its decision
(pixel threshold, image gate), then the mean over the runs. ``--test`` adds the test figures.
"""

import argparse
import json
import subprocess
from pathlib import Path

import yaml

FIGURES = ("iou", "mean_image_iou", "detection_recall", "false_alarm_rate", "image_auroc")


def experiment_ref(name: str) -> str:
    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], check=True, capture_output=True, text=True).stdout.split()
    matches = [ref for ref in refs if ref.rsplit("/", 1)[-1] == name]
    if len(matches) != 1:
        raise SystemExit(f"{name}: {len(matches)} experiments of that name (git refs under refs/exps)")
    return matches[0]


def run_metrics(ref: str) -> dict[str, dict]:
    """Each run's metrics file of the experiment at ``ref`` (the runs its ``compare`` section names;
    its ``dvc.lock`` may keep entries of runs no longer in the matrix), read from the DVC cache."""
    show = lambda path: subprocess.run(["git", "show", f"{ref}:{path}"], check=True, capture_output=True, text=True).stdout  # noqa: E731
    compare = yaml.safe_load(show("params.yaml"))["compare"]
    wanted = {f"metrics/runs/{m}-{loss}-seed{s}-fold{f}.json" for m in compare["models"] for loss in compare["losses"] for s in compare["seeds"] for f in compare["folds"]}
    found = {}
    for stage in yaml.safe_load(show("dvc.lock"))["stages"].values():
        for out in stage.get("outs", []):
            path = out["path"]
            if path in wanted:
                digest = out["md5"]
                found[Path(path).stem] = json.loads((Path(".dvc/cache/files/md5") / digest[:2] / digest[2:]).read_text())
    return found


def line(name: str, figures: dict, metrics: dict) -> str:
    values = "  ".join(f"{key} {figures[key]:.3f}" if figures.get(key) is not None else f"{key} n/a" for key in FIGURES)
    return f"  {name:40s} {values}  threshold {metrics['threshold']:.2f}  gate {metrics['image_threshold']:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="+")
    parser.add_argument("--test", action="store_true", help="print the test figures as well")
    args = parser.parse_args()
    parts = ("val", "test") if args.test else ("val",)
    for experiment in args.experiments:
        runs = run_metrics(experiment_ref(experiment))
        print(experiment)
        for part in parts:
            print(f" {part}")
            for name, metrics in sorted(runs.items()):
                print(line(name, metrics[part], metrics))
            means = {key: sum(m[part][key] for m in runs.values()) / len(runs) for key in FIGURES if all(m[part].get(key) is not None for m in runs.values())}
            print(f"  {'mean over ' + str(len(runs)) + ' runs':40s} " + "  ".join(f"{key} {value:.3f}" for key, value in means.items()))


if __name__ == "__main__":
    main()
