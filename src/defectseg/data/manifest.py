"""Prepare's manifest: one row per pair, its copied image and mask, size, class, group and fold roles.

The manifest lives in the prepared data set's folder and names each image and mask by its
path *relative to that folder* (``images/<id>.png``), so the data set is a self-contained
DVC output: it reads the same on any machine, at any path, after ``dvc pull``.
"""

from pathlib import Path

import pandas as pd

from defectseg.errors import DataError

MANIFEST = "manifest.csv"
COLUMNS = ["id", "defect_class", "image", "mask", "width", "height", "defect_fraction", "group"]
FILE_COLUMNS = ("image", "mask")
NEEDED = ["id", "defect_class", *FILE_COLUMNS]


def read_manifest(path: Path) -> pd.DataFrame:
    """The manifest at ``path``, indexed by id, with image and mask paths resolved against its folder."""
    path = Path(path)
    try:
        manifest = pd.read_csv(path, dtype={"id": str})
    except FileNotFoundError:
        raise DataError(path, "manifest not found: run `dvc repro prepare` (or `dvc pull`)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(path, f"damaged manifest ({str(exc).splitlines()[0]}): run `dvc repro -f prepare` or `dvc checkout {path}`") from None
    missing = [column for column in NEEDED if column not in manifest]
    if missing:
        raise DataError(path, f"damaged manifest: no column {', '.join(missing)}: run `dvc repro -f prepare` or `dvc checkout {path}`")
    for column in FILE_COLUMNS:
        manifest[column] = [str(path.parent / name) for name in manifest[column]]
    return manifest.set_index("id")


def read_groups(path: Path) -> dict[str, str]:
    """Each pair's group (id to group) from the manifest at ``path``; a manifest written before
    groups existed is refused with what to run."""
    manifest = read_manifest(path)
    if "group" not in manifest:
        raise DataError(path, "manifest has no group column (written before groups): run `dvc repro -f prepare`")
    return manifest["group"].astype(str).to_dict()
