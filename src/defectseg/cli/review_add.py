"""``defectseg review add DIR``: make a review folder part of the data set.

Adds DIR (by its absolute path: stages also run in the temporary copies of ``dvc exp run``)
to ``data.extra_sources`` in ``params.yaml``, editing that one line so the file keeps its
comments. The always-run ``source`` stage then fingerprints the folder, so ``dvc repro``
re-runs ``prepare`` (the reviewed pairs join the data set, each its own group unless the
inspector named one) and what follows, and ``dvc push`` stores them with the data set.
"""

import json
import re
from pathlib import Path

import yaml

from defectseg.data.reviews import PROVENANCE
from defectseg.errors import DefectsegError
from defectseg.foundation.atomic import write_text

LINE = re.compile(r"^(?P<indent>  )extra_sources:(?P<value>.*)$", re.M)


def add_review_folder(folder: Path, params_path: Path = Path("params.yaml")) -> bool:
    """Add ``folder`` to ``data.extra_sources`` of ``params_path``; False where it is there already."""
    folder = Path(folder).resolve()
    if not (folder / PROVENANCE).is_file():
        raise DefectsegError(f"{folder}: not a review folder (no {PROVENANCE}): `defectseg serve --review-dir` writes one")
    text = Path(params_path).read_text()
    match = LINE.search(text)
    if match is None:
        raise DefectsegError(f"{params_path}: no data.extra_sources line to add the folder to")
    sources = yaml.safe_load(match["value"]) or []
    if str(folder) in sources:
        return False
    line = f"{match['indent']}extra_sources: {json.dumps([*sources, str(folder)])}"
    write_text(Path(params_path), text[: match.start()] + line + text[match.end() :])
    return True
