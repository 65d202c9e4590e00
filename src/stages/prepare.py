"""Stage prepare: read, check and split the raw data named by ``data.source`` (into ``compare.folds`` folds)."""

from pathlib import Path

from defectseg.params import load_params
from defectseg.prepare import prepare_dataset
from defectseg.stage import run_stage


def main() -> None:
    params = load_params()
    summary = prepare_dataset(params.data, params.compare.fold_count, out_dir=Path("data/prepared"), cache_dir=Path("data/cache"))
    print(f"prepared {summary['pairs']} pairs ({summary['layout']} layout), roles per fold: {summary['per_fold']}")
    if summary["skipped_non_image_files"]:
        print(f"skipped {summary['skipped_non_image_files']} non-image files, e.g. {summary['skipped_examples'][:3]}")


if __name__ == "__main__":
    run_stage(main)
