"""Benchmark: prepare + preprocess the Magnetic Tile copy, against a plain single-process PIL loop.

Run: .venv/bin/python bench/preprocess_mtd.py [path-to-mtd]
Prints the wall time of each step and the speed-up of preprocess over the PIL loop,
all measured in this one run.
"""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from defectseg.config.params import parse_params
from defectseg.data.prepare import prepare_dataset
from defectseg.data.preprocess import preprocess


def pil_loop(manifest: pd.DataFrame, size: int) -> None:
    """The seed's way: open, resize and threshold each file in one process."""
    for image_path, mask_path in zip(manifest["image"], manifest["mask"]):
        np.asarray(Image.open(image_path).convert("L").resize((size, size), Image.BILINEAR))
        np.asarray(Image.open(mask_path).convert("L").resize((size, size), Image.NEAREST)) > 127


def main() -> None:
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets/magnetic-tile")
    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw["data"]["source"] = str(source)
    params = parse_params(raw)
    size = params.preprocess.height_width[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        summary = prepare_dataset(params.data, 1, tmp / "prepared", tmp / "cache")
        prepared = time.perf_counter()
        preprocess(tmp / "prepared" / "manifest.csv", params.preprocess, tmp / "pre")
        done = time.perf_counter()
        pil_loop(pd.read_csv(tmp / "prepared" / "manifest.csv"), size)
        plain = time.perf_counter()
    n = summary["pairs"]
    print(f"pairs: {n}, size {size}")
    print(f"prepare (read + check + split): {prepared - start:.2f} s")
    print(f"preprocess: {done - prepared:.2f} s ({n / (done - prepared):.0f} pairs/s)")
    print(f"plain PIL loop: {plain - done:.2f} s ({n / (plain - done):.0f} pairs/s)")
    print(f"speed-up of preprocess over the PIL loop: {(plain - done) / (done - prepared):.2f}x")


if __name__ == "__main__":
    main()
