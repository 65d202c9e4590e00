"""The prepare stage: read the raw data, check every pair, copy it in, split it, write a manifest.

Outputs, written all-or-nothing into one folder, the data set as a DVC output: every
checked pair byte for byte at its own size (``images/<id><suffix>``, ``masks/<id><suffix>``),
``manifest.csv`` (id, defect class, image and mask paths relative to the folder, width,
height, defect pixel fraction, its group (one physical object, ``groups``) and the pair's
role in each fold: ``fold0`` ... ``fold<K-1>``) and ``summary.json`` (counts per class, of
groups and per fold's roles, skipped files, the leakage audit: the closest image pairs
across roles, and, for each review folder among the extra sources, the served models' field
figures on the reviewed images, ``reviews.field_figures``).
Every later stage reads the data set from here, never from the source, so ``dvc push``
stores it on the remote and a clone elsewhere reproduces every stage after ``dvc pull``.

The pairs of the extra source folders (``data/extra-sources.txt``, such as the inspectors' review
folders of ``defectseg review add``; each in any layout) join the source's, each folder's ``groups.csv`` naming
its groups. With one fold, ``fold0`` is the train/val/test split of ``data.split``; with K >= 2
folds (``compare.folds``), fold ``f`` tests the groups dealt to it and trains and
validates on the others (``splits.assign_folds``). A group never holds two roles in one
fold: prepare checks it and refuses, naming the group, before anything is written.
"""

import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from defectseg.config.data import DataParams, GroupParams
from defectseg.data.groups import GROUPS_FILE, join_groups, mtd_frame_groups, read_groups_file
from defectseg.data.images import read_image, read_mask
from defectseg.data.layouts import DEFECT, FREE, Found, Pair, find_pairs
from defectseg.data.manifest import COLUMNS, MANIFEST
from defectseg.data.near_duplicates import closest_across, near_duplicate_pairs, thumbnail
from defectseg.data.reviews import field_figures, read_reviews
from defectseg.data.sources import resolve_source
from defectseg.data.splits import SPLITS, assign_folds, assign_splits, fold_column, groups_across_roles
from defectseg.data.synthetic import write_tiles
from defectseg.errors import DataError
from defectseg.foundation.atomic import atomic_dir, write_json


def check_pair(pair: Pair, min_side: int, max_pixels: int) -> tuple[dict, np.ndarray]:
    """Decode a pair, check it, and return its manifest row (without group, split or copied
    paths) and its image's near-duplicate thumbnail."""
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
    row = {
        "id": pair.id,
        "defect_class": defect_class,
        "image": str(pair.image),
        "mask": str(pair.mask),
        "width": width,
        "height": height,
        "defect_fraction": round(fraction, 6),
    }
    return row, thumbnail(image)


def _refuse_duplicate_ids(pairs: list[Pair]) -> None:
    seen: dict[str, Path] = {}
    for pair in pairs:
        if pair.id in seen:
            raise DataError(pair.image, f"duplicate id {pair.id!r}: also {seen[pair.id]}")
        seen[pair.id] = pair.image


def _refuse_empty_roles(roles: list[str], fold: int, folds: int, params: DataParams) -> None:
    """Training needs val (model and threshold choice) and test needs images: refuse a fold that leaves one empty."""
    counts = {name: roles.count(name) for name in SPLITS}
    empty = [name for name, count in counts.items() if count == 0]
    if empty:
        found = ", ".join(f"{name} {count}" for name, count in counts.items())
        if folds == 1:
            fractions = "/".join(f"{getattr(params.split, name):g}" for name in SPLITS)
            how = f"split at train/val/test = {fractions}"
        else:
            how = f"in fold {fold} of {folds}"
        raise DataError(
            params.source,
            f"{len(roles)} pairs {how} leave {' and '.join(empty)} empty ({found}); add pairs or change data.split or compare.folds",
        )


def assign_roles(manifest: pd.DataFrame, folds: int, params: DataParams) -> list[list[str]]:
    """Each fold's roles of the manifest's pairs, by group, checked for empty roles and divided groups."""
    ids, classes, groups = list(manifest["id"]), list(manifest["defect_class"]), list(manifest["group"])
    parts = 3 if folds == 1 else folds
    if len(set(groups)) < parts:
        raise DataError(params.source, f"{len(ids)} pairs in {len(set(groups))} groups cannot be cut by group into {parts} parts; add pairs or lower compare.folds")
    roles = [assign_splits(ids, classes, groups, params.split)] if folds == 1 else assign_folds(ids, classes, groups, folds, params.split)
    for fold, fold_roles in enumerate(roles):
        _refuse_empty_roles(fold_roles, fold, folds, params)
        refuse_divided_groups(groups, fold_roles, fold, params.source)
    return roles


def refuse_divided_groups(groups: list[str], roles: list[str], fold: int, source: str) -> None:
    """A group whose images hold two roles would test a photograph of an object trained on: refuse it, naming the group."""
    divided = groups_across_roles(groups, roles)
    if divided:
        group, found = next(iter(divided.items()))
        raise DataError(source, f"group {group!r} crosses {' and '.join(found)} in fold {fold} ({len(divided)} group(s) divided); its images must share one role")


def group_labels(found: Found, root: Path, frame_gap: int) -> tuple[list[str | None], str]:
    """Each of ``found``'s pairs' group label before near-duplicates join them, and where the labels came from."""
    ids = [pair.id for pair in found.pairs]
    files = [folder / GROUPS_FILE for folder in dict.fromkeys([found.folder or root, root])]
    given = next((read_groups_file(path, set(ids)) for path in files if path.is_file()), {})
    named = mtd_frame_groups(ids, frame_gap) if found.layout == "mtd" else {}
    labels = [given.get(pair.id) or pair.group or named.get(pair.id) for pair in found.pairs]
    source = GROUPS_FILE if given else {"mtd": "MTD frame numbers", "synthetic": "synthetic objects"}.get(found.layout, "near-duplicates only")
    return labels, source


def audit_leakage(manifest: pd.DataFrame, thumbnails: np.ndarray, folds: int, params: GroupParams) -> list[dict]:
    """Per fold: how many near-duplicate pairs sit in two roles (0 is the promise) and the closest pairs across roles."""
    result = []
    for fold in range(folds):
        roles = manifest[fold_column(fold)].to_numpy(str)
        crossing, closest = closest_across(thumbnails, roles, params.audit_pairs, params.near_duplicate_similarity)
        listed = [
            {"a": manifest["id"].iloc[p.a], "a_role": roles[p.a], "b": manifest["id"].iloc[p.b], "b_role": roles[p.b], "similarity": round(p.similarity, 4)}
            for p in closest
        ]
        result.append({"near_duplicates_across_roles": crossing, "closest": listed})
    return result


def copy_pair(pair: Pair, folder: Path) -> dict[str, str]:
    """Copy a checked pair's files, bytes unchanged, into ``folder``; return their paths relative to it."""
    copied = {}
    for column, source in (("image", pair.image), ("mask", pair.mask)):
        name = f"{column}s/{pair.id}{source.suffix}"
        shutil.copyfile(source, folder / name)
        copied[column] = name
    return copied


def _check_and_copy(pairs: list[Pair], params: DataParams, folder: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The checked pairs' manifest rows (in ``pairs``' order) and their images' thumbnails."""
    _refuse_duplicate_ids(pairs)
    for column in ("images", "masks"):
        (folder / column).mkdir()

    def one(pair: Pair) -> tuple[dict, np.ndarray]:
        row, thumb = check_pair(pair, params.min_side, params.max_pixels)
        return {**row, **copy_pair(pair, folder)}, thumb

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        checked = list(pool.map(one, pairs))
    return pd.DataFrame([row for row, _ in checked]), np.stack([thumb for _, thumb in checked])


def count_pairs(manifest: pd.DataFrame, folds: int, found: Found, root: Path) -> dict:
    """Counts per class, of groups and per fold's roles, plus what was skipped (paths relative to the source ``root``)."""
    return {
        "layout": found.layout,
        "pairs": int(len(manifest)),
        "groups": int(manifest["group"].nunique()),
        "folds": folds,
        "per_fold": [{s: int((manifest[fold_column(f)] == s).sum()) for s in SPLITS} for f in range(folds)],
        "groups_per_fold": [{s: int(manifest.loc[manifest[fold_column(f)] == s, "group"].nunique()) for s in SPLITS} for f in range(folds)],
        "per_class": {c: int(n) for c, n in manifest["defect_class"].value_counts().sort_index().items()},
        "skipped_non_image_files": len(found.skipped),
        "skipped_examples": [p.relative_to(root).as_posix() for p in found.skipped[:10]],
    }


def _prepare_from(root: Path, found: Found, params: DataParams, folds: int, out_dir: Path, extra_sources: list[Path]) -> dict:
    extras = [(Path(folder), find_pairs(Path(folder))) for folder in extra_sources]
    with atomic_dir(out_dir) as tmp:
        pairs = found.pairs + [pair for _, extra in extras for pair in extra.pairs]
        manifest, thumbnails = _check_and_copy(pairs, params, tmp)
        labels, group_source = group_labels(found, root, params.groups.mtd_frame_gap)
        for folder, extra in extras:
            labels += group_labels(extra, folder, params.groups.mtd_frame_gap)[0]
        near = near_duplicate_pairs(thumbnails, params.groups.near_duplicate_similarity)
        manifest["group"] = join_groups(list(manifest["id"]), labels, [(p.a, p.b) for p in near])
        roles = assign_roles(manifest, folds, params)
        roles_by_fold = {fold_column(fold): fold_roles for fold, fold_roles in enumerate(roles)}
        manifest = manifest[COLUMNS].assign(**roles_by_fold)
        audit = audit_leakage(manifest, thumbnails, folds, params.groups)
        manifest = manifest.sort_values("id", kind="stable")
        manifest.to_csv(tmp / MANIFEST, index=False)
        summary = count_pairs(manifest, folds, found, root)
        summary["group_source"] = group_source
        if extras:
            summary["extra_sources"] = {folder.name: len(extra.pairs) for folder, extra in extras}
            reviewed = {folder.name: read_reviews(folder) for folder, _ in extras}
            summary["field_figures"] = {name: field_figures(rows) for name, rows in reviewed.items() if rows}
        summary["leakage_audit"] = {"similarity": params.groups.near_duplicate_similarity, "near_duplicate_pairs": len(near), "per_fold": audit}
        write_json(tmp / "summary.json", summary)
    return summary


def prepare_dataset(params: DataParams, folds: int, out_dir: Path, cache_dir: Path, extra_sources: list[Path] = ()) -> dict:
    """Run the prepare stage into ``out_dir`` with ``folds`` folds, the pairs of ``extra_sources`` beside the source's; return the summary."""
    if params.source == "synthetic":
        with tempfile.TemporaryDirectory(prefix="defectseg-synthetic-") as scratch:
            found = Found("synthetic", write_tiles(Path(scratch), params.synthetic))
            return _prepare_from(Path(scratch), found, params, folds, Path(out_dir), list(extra_sources))
    root = resolve_source(params.source, params.mtd, cache_dir)
    return _prepare_from(root, find_pairs(root), params, folds, Path(out_dir), list(extra_sources))
