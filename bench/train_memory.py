"""Benchmark: peak memory (RSS) of training at the default and at the MTD settings.

Run: .venv/bin/python bench/train_memory.py [--source ../shared/datasets/magnetic-tile]
Each setting trains 2 epochs in a fresh process, and the peak RSS of that process is
printed. The MTD setting is the one in configs/mtd.yaml when it exists.
"""

import argparse
import resource
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import yaml

from defectseg.config.params import apply_overrides

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import yaml
    from defectseg.config.params import parse_params
    from defectseg.data.prepare import prepare_dataset
    from defectseg.data.preprocess import preprocess
    from defectseg.config.runs import Run
    from defectseg.training.train_run import train_run
    raw = yaml.safe_load(Path(sys.argv[1]).read_text())
    tmp = Path(sys.argv[2])
    params = parse_params(raw)
    prepare_dataset(params.data, 1, tmp / "prepared", tmp / "cache")
    preprocess(tmp / "prepared" / "manifest.csv", params.preprocess, tmp / "pre")
    train_run(params, Run("unet", "dicebce", 0, 0), tmp / "pre", tmp / "prepared" / "manifest.csv", tmp / "model", tmp / "live", tmp / "scratch")
    """
)


def peak_rss_mb(raw: dict) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        params_path = Path(tmp) / "params.yaml"
        params_path.write_text(yaml.safe_dump(raw))
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        subprocess.run([sys.executable, "-c", CHILD, str(params_path), tmp], check=True, capture_output=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(after, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", default="../shared/datasets/magnetic-tile")
    args = parser.parse_args()
    default = yaml.safe_load(Path("params.yaml").read_text())
    default["train"]["epochs"] = 2
    print(f"default (synthetic, {default['preprocess']['image_size']} px): peak RSS {peak_rss_mb(default):.0f} MB")
    mtd = yaml.safe_load(Path("params.yaml").read_text())
    overrides = Path("configs/mtd.yaml")
    if overrides.exists():
        apply_overrides(mtd, yaml.safe_load(overrides.read_text()))
    mtd["data"]["source"] = args.source
    mtd["train"]["epochs"] = 2
    print(f"MTD ({mtd['preprocess']['image_size']} px): peak RSS {peak_rss_mb(mtd):.0f} MB")


if __name__ == "__main__":
    main()
