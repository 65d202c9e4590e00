"""Stage preprocess: resize and binarize every pair once into one array file."""

from pathlib import Path

from defectseg.config.preprocess import load_preprocess_params
from defectseg.data.preprocess import preprocess
from defectseg.foundation.stage import run_stage


def main() -> None:
    info = preprocess(Path("data/prepared/manifest.csv"), load_preprocess_params(), out_dir=Path("data/preprocessed"))
    size = f"{info['height']}x{info['width']}" if "height" in info else f"{info['sizes']} sizes (each tile scaled by {info['scale']:g})"
    print(f"preprocessed {info['count']} pairs to {size}")


if __name__ == "__main__":
    run_stage(main)
