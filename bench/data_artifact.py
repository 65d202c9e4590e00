"""Benchmark: the Magnetic Tile set as a DVC artifact, in a throw-away git + DVC repository.

Run: .venv/bin/python bench/data_artifact.py [--data ../shared/datasets/magnetic-tile]

Copies the data set to a scratch folder (the shared copy is never touched), points
``data.source`` at it and measures, in this one run:
1. the first ``dvc repro preprocess`` (source, prepare, preprocess) and what it adds to the DVC cache;
2. a no-op ``dvc repro preprocess`` (the source stage hashes every file of the source);
3. one mask relabelled: which stages ``dvc repro preprocess`` re-runs, and what the cache grows by
   (it stores each file once by content, so only the changed mask, the one rewritten shard of
   the preprocessed pairs and the listings are new; before the shards, the whole 103 MiB file);
4. getting ``data/preprocessed`` on a clone that has ``data/prepared``: recomputing it
   (``dvc repro -f -s preprocess``) against pulling it from a local remote (``dvc pull``), so
   the choice to cache it rests on a measurement (a network remote pulls slower than a local one).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def run(cwd: Path, *cmd: str) -> tuple[float, str]:
    """Run ``cmd`` with this Python's scripts first on PATH (the stages' ``python``); return seconds and stdout."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stdout}{result.stderr}")
    return time.perf_counter() - start, result.stdout


def stages(out: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", out)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def cache_bytes(root: Path) -> int:
    return folder_bytes(root / ".dvc" / "cache")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "magnetic-tile")
    args = parser.parse_args()
    dvc = str(Path(sys.executable).parent / "dvc")
    with tempfile.TemporaryDirectory(prefix="data-artifact-") as scratch:
        scratch = Path(scratch)
        source = shutil.copytree(args.data, scratch / "mtd")
        root = scratch / "repo"
        root.mkdir()
        for name in ("dvc.yaml", "params.yaml", ".gitignore", "data/dvc.yaml"):
            (root / name).parent.mkdir(exist_ok=True)
            shutil.copy(REPO / name, root / name)
        shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        raw = yaml.safe_load((root / "params.yaml").read_text())
        raw["data"]["source"] = str(source)
        raw["preprocess"]["image_size"] = 224
        (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        for cmd in (["git", "init", "-q"], [dvc, "init", "-q"], [dvc, "config", "core.analytics", "false"]):
            run(root, *cmd)
        files = sum(1 for p in source.rglob("*") if p.is_file())
        size = folder_bytes(source)
        print(f"source: {files} files, {size / 2**20:.1f} MiB")
        first, _ = run(root, dvc, "repro", "preprocess")
        cached = cache_bytes(root)
        print(f"first dvc repro preprocess: {first:.1f} s; DVC cache {cached / 2**20:.1f} MiB "
              f"(data/prepared {folder_bytes(root / 'data' / 'prepared') / 2**20:.1f} MiB, "
              f"data/preprocessed {folder_bytes(root / 'data' / 'preprocessed') / 2**20:.1f} MiB)")
        noop, out = run(root, dvc, "repro", "preprocess")
        print(f"no-op dvc repro preprocess: {noop:.2f} s, ran {stages(out)}")
        mask = next(source.glob("MT_Blowhole/Imgs/*.png"))
        pixels = np.asarray(Image.open(mask)).copy()
        pixels[: pixels.shape[0] // 4, : pixels.shape[1] // 4] = 255
        Image.fromarray(pixels).save(mask)
        shards = {p.name: p.read_bytes() for p in (root / "data" / "preprocessed").glob("pairs-*.npz")}
        again, out = run(root, dvc, "repro", "preprocess")
        grown = cache_bytes(root) - cached
        rewritten = [p for p in (root / "data" / "preprocessed").glob("pairs-*.npz") if shards.get(p.name) != p.read_bytes()]
        size = sum(p.stat().st_size for p in rewritten)
        print(f"one mask relabelled: dvc repro preprocess {again:.1f} s, ran {stages(out)}; cache grew by {grown / 2**20:.2f} MiB: "
              f"{len(rewritten)} rewritten shard(s) of {len(shards)}, {size / 2**20:.2f} MiB, and {(grown - size) / 2**10:.1f} KiB else "
              f"(the relabelled mask, listings)")
        run(root, dvc, "remote", "add", "-d", "local", str(scratch / "remote"))
        run(root, dvc, "push")
        recompute, _ = run(root, dvc, "repro", "-f", "-s", "preprocess")
        shutil.rmtree(root / "data" / "preprocessed")
        shutil.rmtree(root / ".dvc" / "cache")
        pull, _ = run(root, dvc, "pull", "preprocess")
        print(f"data/preprocessed on a clone with data/prepared: recompute (dvc repro -f -s preprocess) {recompute:.1f} s, "
              f"pull from a local remote (dvc pull preprocess, empty cache) {pull:.1f} s")


if __name__ == "__main__":
    main()
