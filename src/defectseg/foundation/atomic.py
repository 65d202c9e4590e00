"""Write outputs so that a failure or a kill never leaves a half-written file or folder.

Everything is built next to its target under a temporary name, flushed to disk, then
renamed into place; ``os.replace`` is atomic on one file system. Ctrl-C during a write takes
effect once the write is done (``deferred_interrupt``), and a temporary left by a process
that was killed outright is removed by the next run that writes there (``remove_stale_temporaries``).
"""

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from defectseg.errors import DataError

_deferring = False


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold back Ctrl-C (SIGINT) while the block runs, then raise ``KeyboardInterrupt`` if one came.

    A ``KeyboardInterrupt`` raised inside a C++ writer such as ``torch.save`` surfaces as a
    ``RuntimeError`` with a torch traceback; held back, the write completes and the stage
    reports ``interrupted``. Nested blocks defer to the outermost; off the main thread
    (where signals cannot be handled) the block runs as is.
    """
    global _deferring
    if _deferring or threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    _deferring = True
    try:
        yield
    finally:
        _deferring = False
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporaries (``.<name>.*.tmp``) that a killed writer left in ``folder``; return them.

    Call it only where no other process is writing into ``folder`` (a stage's own output folder).
    """
    stale = sorted(Path(folder).glob(".*.tmp")) if Path(folder).is_dir() else []
    for path in stale:
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)
    return stale


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


def write_bytes(path: Path, data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


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
