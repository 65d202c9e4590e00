"""The prepare stage: read the raw data, check every pair, split it, write a manifest.

Outputs, written all-or-nothing into one folder: ``manifest.csv`` (id, defect class,
split, image and mask paths, width, height, defect pixel fraction), ``summary.json``
(counts per class and split, skipped files) and, for the synthetic source, the
generated PNG pairs.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from defectseg.atomic import atomic_dir, write_json
from defectseg.errors import DataError
from defectseg.images import read_image, read_mask
from defectseg.layouts import DEFECT, FREE, Pair, find_pairs
from defectseg.params import DataParams
from defectseg.sources import resolve_source
from defectseg.splits import SPLITS, assign_splits
from defectseg.synthetic import write_tiles

MANIFEST_COLUMNS = ["id", "defect_class", "split", "image", "mask", "width", "height", "defect_fraction"]


def check_pair(pair: Pair, min_side: int, max_pixels: int) -> dict:
    """Decode a pair, check it, and return its manifest row (without split)."""
    image = read_image(pair.image, max_pixels)
    mask = read_mask(pair.mask, max_pixels)
    height, width = image.shape
    if mask.shape != image.shape:
        raise DataError(pair.mask, f"mask is {mask.shape[1]}x{mask.shape[0]} but its image {pair.image} is {width}x{height}")
    if min(height, width) < min_side:
        raise DataError(pair.image, f"image is {width}x{height}, smaller than data.min_side={min_side}")
    fraction = float(np.count_nonzero(mask)) / mask.size
    if fraction == 1.0:
        raise DataError(pair.mask, "mask marks every pixel as defect (an inverted mask?)")
    defect_class = pair.defect_class or (DEFECT if fraction > 0 else FREE)
    if defect_class == FREE and fraction > 0:
        raise DataError(pair.mask, "image is filed as defect-free but its mask has defect pixels")
    return {
        "id": pair.id,
        "defect_class": defect_class,
        "image": str(pair.image),
        "mask": str(pair.mask),
        "width": width,
        "height": height,
        "defect_fraction": round(fraction, 6),
    }


def _refuse_duplicate_ids(pairs: list[Pair]) -> None:
    seen: dict[str, Path] = {}
    for pair in pairs:
        if pair.id in seen:
            raise DataError(pair.image, f"duplicate id {pair.id!r}: also {seen[pair.id]}")
        seen[pair.id] = pair.image


def _refuse_empty_splits(splits: list[str], params: DataParams) -> None:
    """Training needs val (model and threshold choice) and test needs images: refuse a split that leaves one empty."""
    counts = {name: splits.count(name) for name in SPLITS}
    empty = [name for name, count in counts.items() if count == 0]
    if empty:
        fractions = "/".join(f"{getattr(params.split, name):g}" for name in SPLITS)
        found = ", ".join(f"{name} {count}" for name, count in counts.items())
        raise DataError(
            params.source,
            f"{len(splits)} pairs split at train/val/test = {fractions} leave {' and '.join(empty)} empty ({found}); "
            "add pairs or change data.split",
        )


def _check_all(pairs: list[Pair], params: DataParams) -> pd.DataFrame:
    _refuse_duplicate_ids(pairs)
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        rows = list(pool.map(lambda p: check_pair(p, params.min_side, params.max_pixels), pairs))
    return pd.DataFrame(rows)


def count_pairs(manifest: pd.DataFrame, layout: str, skipped: list[Path]) -> dict:
    """Counts per class and split, plus what was skipped and why."""
    counts = manifest.groupby(["defect_class", "split"]).size().unstack(fill_value=0)
    counts = counts.reindex(columns=list(SPLITS), fill_value=0)
    return {
        "layout": layout,
        "pairs": int(len(manifest)),
        "per_split": {s: int((manifest["split"] == s).sum()) for s in SPLITS},
        "per_class": {c: {s: int(v) for s, v in row.items()} for c, row in counts.iterrows()},
        "skipped_non_image_files": len(skipped),
        "skipped_examples": [str(p) for p in skipped[:10]],
    }


def prepare_dataset(params: DataParams, out_dir: Path, cache_dir: Path) -> dict:
    """Run the prepare stage into ``out_dir`` and return the summary."""
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        if params.source == "synthetic":
            pairs = write_tiles(tmp / "synthetic", params.synthetic)
            layout, skipped = "synthetic", []
        else:
            found = find_pairs(resolve_source(params.source, params.mtd, cache_dir))
            pairs, layout, skipped = found.pairs, found.layout, found.skipped
        manifest = _check_all(pairs, params)
        splits = assign_splits(list(manifest["id"]), list(manifest["defect_class"]), params.split)
        _refuse_empty_splits(splits, params)
        manifest.insert(2, "split", splits)
        if params.source == "synthetic":
            for column in ("image", "mask"):
                manifest[column] = [str(out_dir / Path(p).relative_to(tmp)) for p in manifest[column]]
        manifest = manifest[MANIFEST_COLUMNS].sort_values("id", kind="stable")
        manifest.to_csv(tmp / "manifest.csv", index=False)
        summary = count_pairs(manifest, layout, skipped)
        write_json(tmp / "summary.json", summary)
    return summary
