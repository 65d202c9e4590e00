"""Write outputs so that a failure or a kill never leaves a half-written file or folder.

Everything is built next to its target under a temporary name, flushed to disk, then
renamed into place; ``os.replace`` is atomic on one file system.
"""

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from defectseg.errors import DataError


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def check_output_path(path: Path, folder: bool, option: str) -> None:
    """Refuse, before anything is written, an output path that cannot become a ``folder``
    (or a file): the wrong kind of thing already there, or a file where a parent folder must be."""
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        raise DataError(path, f"{option} names an existing {'file' if folder else 'folder'}; give a {'folder' if folder else 'file path'}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise DataError(parent, f"{option} {path}: this is a file, so no folder can be made under it")
            return


def write_text(path: Path, text: str) -> None:
    """Atomically write ``text`` to ``path``."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, data: object) -> None:
    """Atomically write ``data`` as indented JSON."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on success it replaces ``path``.

    On failure the temporary folder is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
