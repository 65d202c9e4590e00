"""Stage prepare: read, check and split the raw data named by ``data.source`` (into ``compare.folds`` folds)."""

from pathlib import Path

from defectseg.config.data import load_data_params
from defectseg.config.folds import load_fold_count
from defectseg.data.extra_sources import read_extra_sources
from defectseg.data.prepare import prepare_dataset
from defectseg.foundation.stage import run_stage


def main() -> None:
    summary = prepare_dataset(load_data_params(), load_fold_count(), Path("data/prepared"), Path("data/cache"), read_extra_sources())
    print(f"prepared {summary['pairs']} pairs ({summary['layout']} layout), roles per fold: {summary['per_fold']}")
    if summary["skipped_non_image_files"]:
        print(f"skipped {summary['skipped_non_image_files']} non-image files, e.g. {summary['skipped_examples'][:3]}")


if __name__ == "__main__":
    run_stage(main)
