"""Saving and loading checkpoints: plain state dicts, written atomically, loaded safely.

Checkpoints hold tensors, numbers and strings only. Loading uses
``torch.load(weights_only=True)``, which refuses pickled objects (and so any code
hidden in them); a refused or corrupt file is reported as a ``DataError``.
"""

import io
import pickle
import re
import zipfile
from pathlib import Path

import torch

from defectseg.errors import DataError
from defectseg.foundation.atomic import atomic_file, deferred_interrupt


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` via a temporary file, fsync and rename, with Ctrl-C held
    back until it is done.

    The state is serialized in memory first, so a failed write (a full disk) is a plain
    ``OSError``, reported as one line naming the file, instead of an error deep in torch's
    zip writer; the previous file is untouched and no temporary is left. Saving to a
    file object keeps the zip's inner folder name fixed ("archive"), so equal states give
    equal bytes and DVC's run-cache sees identical runs as identical.
    """
    path = Path(path)
    with deferred_interrupt():
        buffer = io.BytesIO()
        torch.save(state, buffer)
        try:
            with atomic_file(path) as tmp:
                tmp.write_bytes(buffer.getbuffer())
        except OSError as exc:
            raise DataError(path, (exc.strerror or str(exc)).lower()) from None


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
    except Exception as exc:  # a damaged archive fails anywhere in unpickling (IndexError, KeyError, EOFError, RuntimeError, ...)
        raise DataError(path, f"not a readable checkpoint ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise DataError(path, f"not a defectseg checkpoint (holds a {type(state).__name__})")
    return state
