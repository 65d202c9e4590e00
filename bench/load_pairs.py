"""Benchmark: loading the preprocessed Magnetic Tile pairs, sharded (now) against one array file (before).

Run: .venv/bin/python bench/load_pairs.py [--data ../shared/datasets/magnetic-tile] [--size 224] [--repeats 7]

Prepares and preprocesses the data set once into a scratch folder (the 256 shards the
preprocess stage writes), writes the same pairs as the single ``pairs.npz`` the stage wrote
before (stacked ``images``, ``masks``, ``ids``, ``classes``, uncompressed), and times what a
training or evaluate process does first: reading every pair into memory. Each read runs in a
fresh Python process, as a stage does (its fresh memory costs page faults that a repeated read
in one process would hide); the time is taken inside it, interpreter start and imports left
out. Both layouts are read alternately, ``--repeats`` times each, from the page cache (one
untimed read of each first), and the median of each and their ratio are printed, so the two
figures share one run's conditions.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

from defectseg.config.params import apply_overrides, parse_params
from defectseg.data.dataset import load_split
from defectseg.data.prepare import prepare_dataset
from defectseg.data.preprocess import preprocess

REPO = Path(__file__).resolve().parents[1]


# the read each fresh process times, after importing what a stage imports: the stage's loader for
# the shards, one np.load for the file before
READERS = {
    "shards": "from defectseg.data.dataset import load_split\nread = lambda: load_split(PATH)",
    "one file": "import defectseg.data.dataset\ndef read():\n    with np.load(PATH, allow_pickle=False) as a:\n        return a['images'], a['masks'], a['ids'], a['classes']",
}


def seconds_in_fresh_process(layout: str, path: Path) -> float:
    """Seconds one fresh Python process takes to read every pair from ``path`` in ``layout``."""
    script = f"import time\nfrom pathlib import Path\nimport numpy as np\nPATH = Path({str(path)!r})\n{READERS[layout]}\n"
    script += "start = time.perf_counter()\nread()\nprint(time.perf_counter() - start)\n"
    return float(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "magnetic-tile")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    params = parse_params(apply_overrides(raw, {"data.source": str(args.data.resolve()), "preprocess.image_size": args.size}))
    with tempfile.TemporaryDirectory(prefix="load-pairs-") as scratch:
        scratch = Path(scratch)
        prepare_dataset(params.data, 1, scratch / "prepared", scratch / "cache")
        preprocess(scratch / "prepared" / "manifest.csv", params.preprocess, scratch / "shards")
        pairs = load_split(scratch / "shards")
        single = scratch / "single" / "pairs.npz"
        single.parent.mkdir()
        np.savez(single, images=pairs.images, masks=pairs.masks, ids=pairs.ids, classes=pairs.classes)
        sharded_bytes = sum(p.stat().st_size for p in (scratch / "shards").glob("pairs-*.npz"))
        print(f"{len(pairs)} pairs at {args.size} px: 64 shards {sharded_bytes / 2**20:.1f} MiB in "
              f"{len(list((scratch / 'shards').glob('pairs-*.npz')))} files, one file {single.stat().st_size / 2**20:.1f} MiB")
        paths = {"shards": scratch / "shards", "one file": single}
        timings = {layout: [] for layout in paths}
        for repeat in range(args.repeats + 1):
            for layout, path in paths.items():
                elapsed = seconds_in_fresh_process(layout, path)
                if repeat:
                    timings[layout].append(elapsed)
        shards, one = statistics.median(timings["shards"]), statistics.median(timings["one file"])
        print(f"load every pair in a fresh process (median of {args.repeats}): shards {shards * 1000:.0f} ms, one file {one * 1000:.0f} ms; "
              f"ratio shards / one file {shards / one:.2f}")


if __name__ == "__main__":
    main()
