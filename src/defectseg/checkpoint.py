"""Saving and loading checkpoints: plain state dicts, written atomically, loaded safely.

Checkpoints hold tensors, numbers and strings only. Loading uses
``torch.load(weights_only=True)``, which refuses pickled objects (and so any code
hidden in them); a refused or corrupt file is reported as a ``DataError``.
"""

import pickle
import re
import zipfile
from pathlib import Path

import torch

from defectseg.atomic import atomic_file
from defectseg.errors import DataError


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` via a temporary file, fsync and rename.

    Saving through an open handle keeps the zip's inner folder name fixed ("archive")
    instead of the temporary file's random name, so equal states give equal bytes and
    DVC's run-cache sees identical runs as identical.
    """
    with atomic_file(Path(path)) as tmp, open(tmp, "wb") as handle:
        torch.save(state, handle)


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint written by ``save_checkpoint``, refusing anything else."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "checkpoint not found")
    if not zipfile.is_zipfile(path):
        raise DataError(path, "not a readable checkpoint (not a file written by torch.save)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        culprit = re.search(r"(?:unsupported|Unsupported global:) GLOBAL ([\w.]+)", str(exc))
        detail = f": {culprit.group(1)}" if culprit else ""
        raise DataError(path, f"refused: holds pickled objects, not plain weights{detail}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise DataError(path, f"not a readable checkpoint ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise DataError(path, f"not a defectseg checkpoint (holds a {type(state).__name__})")
    return state
