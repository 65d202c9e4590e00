"""The fingerprint of the raw data that ``data.source`` (and ``data/extra-sources.txt``) names, so DVC sees every change to it.

DVC sees a change only in a stage's dependencies, and a folder outside the repository as a
dependency would put its absolute path into ``dvc.lock`` and make ``dvc repro`` fail (after
deleting the prepared data) on every clone without that folder. So the always-run ``source``
stage hashes the source into ``data/source.json``, a small git-tracked file that ``prepare``
depends on: relabelling a mask, adding, removing or replacing a pair changes it, and
``dvc repro`` re-runs prepare and what follows; an unchanged source leaves it byte-identical,
and nothing re-runs. The file holds counts and hashes only, never a path outside the repository.

Where the source is absent (a clone that pulled the prepared data set from a DVC remote), the
previous fingerprint is kept, so the pulled data set stands.
"""

import hashlib
import os
import zipfile
from pathlib import Path

from defectseg.config.data import DataParams
from defectseg.data.sources import sha256_of
from defectseg.errors import DataError
from defectseg.foundation.atomic import write_json


def _summary(kind: str, entries: list[tuple[str, str, int]]) -> dict:
    """Counts, bytes and one SHA-256 over every (relative name, content hash, size), in name order."""
    listing = "".join(f"{name}\t{content}\t{size}\n" for name, content, size in sorted(entries))
    return {"kind": kind, "files": len(entries), "bytes": sum(size for _, _, size in entries), "sha256": hashlib.sha256(listing.encode()).hexdigest()}


def folder_fingerprint(root: Path) -> dict:
    """Every file under ``root`` by its path relative to it, its SHA-256 and its size."""
    entries = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in files:
            path = Path(folder) / name
            entries.append((path.relative_to(root).as_posix(), sha256_of(path), path.stat().st_size))
    return _summary("folder", entries)


def file_fingerprint(path: Path) -> dict:
    """A zip by its entries' names, CRC-32s and sizes (read from its directory, nothing extracted); any other file by its bytes."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return _summary("zip", [(i.filename, f"{i.CRC:08x}", i.file_size) for i in archive.infolist()])
    return _summary("file", [(path.name, sha256_of(path), path.stat().st_size)])


def fingerprint(params: DataParams) -> dict | None:
    """The fingerprint of ``params.source``; None where it is a path that does not exist."""
    if params.source == "synthetic":
        return {"kind": "synthetic"}
    if params.source == "mtd":
        return {"kind": "mtd", "url": params.mtd.url, "sha256": params.mtd.sha256}
    path = Path(params.source)
    if path.is_dir():
        return folder_fingerprint(path)
    if path.is_file():
        return file_fingerprint(path)
    return None


def record_source(params: DataParams, out: Path, extra_sources: list[Path] = ()) -> str:
    """Write the source's fingerprint to ``out`` (unchanged bytes when the source is); return what was done.

    An absent source keeps an existing fingerprint (the prepared data set pulled from a remote
    stands) and is an error only where there is none yet.
    """
    found = fingerprint(params)
    if found is None:
        if Path(out).is_file():
            return f"notice: {params.source}: not found; keeping {out}, so the prepared data set (data/prepared, from `dvc pull`) stands"
        raise DataError(params.source, "source path does not exist")
    extra = [folder_fingerprint(Path(folder)) for folder in extra_sources]
    if extra:
        found = {**found, "extra_sources": extra}
    write_json(out, found)
    return f"source fingerprint: {found}"
