"""Benchmark: `dvc repro` with nothing changed against `dvc status`, and what a training-only change would re-run.

Run from an up-to-date workspace (after `make repro`): .venv/bin/python bench/dvc_noop.py [--rounds 5]
Times a no-op `dvc repro` (the always-run `source` stage, which fingerprints the raw data,
runs in it and is counted) and `dvc status`, alternately, ``--rounds`` times each, and prints
their medians and the difference (target: repro within 1.2 s of status, both measured here,
in one run). Then sets train.lr to another value in params.yaml, asks `dvc repro --dry`
which stages would run, and restores params.yaml byte for byte.
"""

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml


def dvc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], capture_output=True, text=True, check=True)


SOURCE = "data/dvc.yaml:source"


def timed(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = dvc(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    seconds = {"repro": [], "status": []}
    for _ in range(rounds):
        elapsed, noop = timed("repro")
        ran = [stage for stage in re.findall(r"Running stage '([^']+)'", noop.stdout) if stage != SOURCE]
        if ran:
            sys.exit(f"dvc repro ran {ran}: the workspace was not up to date; run `make repro` first")
        seconds["repro"].append(elapsed)
        seconds["status"].append(timed("status")[0])
    repro, status = statistics.median(seconds["repro"]), statistics.median(seconds["status"])
    print(f"no-op dvc repro {repro:.2f} s, dvc status {status:.2f} s (medians of {rounds}, alternately): repro - status = {repro - status:.2f} s")
    path = Path("params.yaml")
    original = path.read_bytes()
    try:
        raw = yaml.safe_load(original)
        raw["train"]["lr"] = raw["train"]["lr"] * 0.5
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        planned = [stage for stage in re.findall(r"Running stage '([^']+)'", dvc("repro", "--dry").stdout) if stage != SOURCE]
    finally:
        path.write_bytes(original)
    print(f"train.lr changed: dvc repro would run {planned}")
    print(f"prepare or preprocess re-run: {'yes' if {'prepare', 'preprocess'} & set(planned) else 'no'}")


if __name__ == "__main__":
    main()
