"""The loss comparison on the Magnetic Tile set, with configs/mtd.yaml, timed end to end.

Run: make mtd   (or: .venv/bin/python bench/mtd_comparison.py [path to the MTD folder or zip, or "mtd"])

Clones this repository's committed state into a temporary folder, applies
configs/mtd.yaml and the data source to its params.yaml, runs `dvc repro` there, then
copies the report (figures and overlays included) and comparison.json into
reports/mtd/, and prints the table and the wall time. The workspace is not touched
otherwise.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from defectseg.atomic import atomic_dir
from defectseg.params import apply_overrides, parse_params


def main() -> None:
    source = sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets/magnetic-tile"
    source = source if source == "mtd" else str(Path(source).resolve())
    overrides = {**yaml.safe_load(Path("configs/mtd.yaml").read_text()), "data.source": source}
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "repo"
        subprocess.run(["git", "clone", "-q", str(Path.cwd()), str(clone)], check=True)
        raw = apply_overrides(yaml.safe_load((clone / "params.yaml").read_text()), overrides)
        parse_params(raw, "configs/mtd.yaml")
        (clone / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        start = time.perf_counter()
        subprocess.run(["dvc", "repro"], cwd=clone, env=env, check=True)
        elapsed = time.perf_counter() - start
        with atomic_dir(Path("reports/mtd")) as out:
            for name in ("report.md", "figures", "overlays"):
                copy = shutil.copytree if (clone / "reports" / name).is_dir() else shutil.copy
                copy(clone / "reports" / name, out / name)
            shutil.copy(clone / "metrics" / "comparison.json", out / "comparison.json")
            (out / "wall_time.txt").write_text(f"{elapsed:.0f} s for dvc repro (prepare to report), 2-core CPU\n")
    table = json.loads(Path("reports/mtd/comparison.json").read_text())["losses"]
    print(f"MTD comparison: {elapsed / 60:.1f} min wall time for dvc repro")
    print(f"{'loss':8s} {'test IoU':>9s} {'bootstrap 95%':>16s} {'false alarms':>13s} {'train IoU':>10s}")
    for loss, row in table.items():
        interval = f"[{row['test_iou_bootstrap_low']:.3f}, {row['test_iou_bootstrap_high']:.3f}]"
        print(f"{loss:8s} {row['test_iou']:9.3f} {interval:>16s} {row['test_false_alarm_rate']:13.3f} {row['train_iou']:10.3f}")
    print("per class (test IoU):", {loss: {c: round(v, 3) for c, v in row["test_per_class_iou"].items()} for loss, row in table.items()})
    print("report: reports/mtd/report.md")


if __name__ == "__main__":
    main()
