"""A comparison on the Magnetic Tile set, as a named DVC experiment.

Run: make mtd | make mtd-cv-losses | make mtd-models
(or: .venv/bin/python bench/mtd_comparison.py --config configs/mtd.yaml [--config ...] [--data FOLDER|ZIP|mtd] [--name NAME | --remake NAME])

Runs `dvc exp run --temp -n NAME` with the overrides of the config files (later ones win)
and the data source as `-S` flags, so the experiment stays in this repository: `dvc exp
show` lists it, `dvc exp apply NAME` brings its trained models (and their decision files)
out of the DVC cache for `defectseg predict --model models/<run>`, and `dvc exp push`
shares it. Then copies its report, figures, overlays, headline.json and comparison.json
into reports/<NAME>/ (git ignores the overlays: they show data-set images) with a
provenance.json (date, machine, commit, wall time, the stages' code hashes from the
experiment's dvc.lock), prints the headline, the verdicts, convergence and the wall time,
and rewrites the result tables of the README and docs/ that cite a report
(``defectseg tables``).

``--remake NAME`` re-makes the report in reports/NAME after a change to the report's own
code: with the same configs every train and evaluate stage is restored from DVC's
run-cache, the experiment is named NAME-remade-<time>, and provenance.json keeps the
earlier one's date, commit and wall time as the measurement under ``measured``. It stops
without writing when a train or evaluate stage's outputs differ from the earlier
experiment's (a stage ran anew: that is a new measurement).
"""

import argparse
import json
import subprocess
import time
from pathlib import Path

import yaml

from defectseg.atomic import atomic_dir
from defectseg.experiments import experiment_ref, files_in, read_file, run_experiment
from defectseg.results_tables import provenance, remeasured_stages, write_tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", action="append", required=True, type=Path, help="YAML of dotted params keys; repeat to layer")
    parser.add_argument("--data", default="../shared/datasets/magnetic-tile", help='MTD folder or zip, or "mtd" to download it')
    parser.add_argument("--name", default=f"mtd-{time.strftime('%Y%m%d-%H%M%S')}")
    parser.add_argument("--remake", metavar="NAME", help="re-make reports/NAME from DVC's run-cache (see above)")
    args = parser.parse_args()
    source = args.data if args.data == "mtd" else str(Path(args.data).resolve())
    overrides = {}
    for config in args.config:
        overrides.update(yaml.safe_load(config.read_text()))
    overrides["data.source"] = source
    commit = subprocess.run(["git", "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    date = time.strftime("%Y-%m-%d")
    start = time.perf_counter()
    folder = args.remake or args.name
    earlier = json.loads((Path("reports") / folder / "provenance.json").read_text()) if args.remake else None
    measured = earlier.get("measured", earlier) if earlier else None
    experiment = f"{folder}-remade-{time.strftime('%Y%m%d-%H%M%S')}" if args.remake else args.name
    ref = run_experiment(experiment, overrides)
    elapsed = time.perf_counter() - start
    out_dir = Path("reports") / folder
    lock_text = read_file(ref, "dvc.lock").decode()
    if measured:
        measured_lock = yaml.safe_load(read_file(experiment_ref(measured["experiment"]), "dvc.lock"))
        if rerun := remeasured_stages(yaml.safe_load(lock_text), measured_lock):
            raise SystemExit(f"error: {experiment}: {', '.join(rerun)} gave other outputs than {measured['experiment']}; a new measurement: use --name")
    with atomic_dir(out_dir) as out:
        paths = ["reports/report.md", "metrics/headline.json", "metrics/comparison.json", *files_in(ref, "reports/figures"), *files_in(ref, "reports/overlays")]
        for path in paths:
            target = out / Path(path).relative_to(Path(path).parts[0])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(read_file(ref, path))
        record = provenance(lock_text, read_file(ref, "params.yaml").decode(), commit, date, elapsed, [str(c) for c in args.config], experiment, measured)
        (out / "provenance.json").write_text(json.dumps(record, indent=1) + "\n")
    table = json.loads((out_dir / "comparison.json").read_text())
    print(f"{experiment}: {elapsed / 60:.1f} min wall time, {table['folds']} fold(s), every figure at each image's own size")
    for arm, row in table["arms"].items():
        print(
            f"{arm:34s} IoU {row['iou']:.3f} {row['iou_interval']}  image IoU {row['mean_image_iou']:.3f}  "
            f"recall {row['detection_recall']:.3f}  false alarms {row['false_alarm_rate']:.3f}  per class {json.dumps({c: round(v, 3) for c, v in row['per_class_iou'].items()})}"
        )
    for verdict in table["verdicts"]:
        print(verdict["verdict"])
    late = [name for name, run in table["runs"].items() if not run["converged"]]
    print(f"{len(table['runs']) - len(late)} of {len(table['runs'])} runs converged" + (f"; still learning: {', '.join(late)}" if late else ""))
    refreshed = write_tables()
    print(f"report: {out_dir}/report.md; models: dvc exp apply {experiment}, then defectseg predict --model models/<run>")
    print(f"result tables refreshed in: {', '.join(map(str, refreshed)) or 'none (no document cites this report yet)'}")


if __name__ == "__main__":
    main()
