"""Benchmark: `dvc repro` with nothing changed, and what a training-only change would re-run.

Run from an up-to-date workspace: .venv/bin/python bench/dvc_noop.py
Times a no-op `dvc repro` (target: 2 s or less; the always-run `source` stage, which
fingerprints the raw data, runs in it and is counted), then sets train.lr to another value
in params.yaml, asks `dvc repro --dry` which stages would run, and restores params.yaml
byte for byte.
"""

import re
import subprocess
import sys
import time
from pathlib import Path

import yaml


def dvc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], capture_output=True, text=True, check=True)


def main() -> None:
    start = time.perf_counter()
    noop = dvc("repro")
    elapsed = time.perf_counter() - start
    ran = [stage for stage in re.findall(r"Running stage '([^']+)'", noop.stdout) if stage != "source"]
    print(f"no-op dvc repro: {elapsed:.2f} s" + (f" (it ran {ran}: the workspace was not up to date)" if ran else ""))
    path = Path("params.yaml")
    original = path.read_bytes()
    try:
        raw = yaml.safe_load(original)
        raw["train"]["lr"] = raw["train"]["lr"] * 0.5
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        planned = [stage for stage in re.findall(r"Running stage '([^']+)'", dvc("repro", "--dry").stdout) if stage != "source"]
    finally:
        path.write_bytes(original)
    print(f"train.lr changed: dvc repro would run {planned}")
    print(f"prepare or preprocess re-run: {'yes' if {'prepare', 'preprocess'} & set(planned) else 'no'}")


if __name__ == "__main__":
    main()
