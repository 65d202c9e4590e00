"""``defectseg review add DIR``: make a review folder part of the data set.

Lists DIR (by its absolute path: stages also run in the temporary copies of ``dvc exp run``)
in ``data/extra-sources.txt``. The always-run ``source`` stage then
fingerprints the folder, so ``dvc repro`` re-runs ``prepare`` (the reviewed pairs join the data
set, each its own group unless the inspector named one) and what follows, and ``dvc push``
stores them with the data set.
"""

from pathlib import Path

from defectseg.data.extra_sources import add_extra_source
from defectseg.data.reviews import PROVENANCE
from defectseg.errors import DefectsegError


def add_review_folder(folder: Path) -> bool:
    """List the review ``folder`` as a source of the data set; False where it is listed already."""
    if not (Path(folder) / PROVENANCE).is_file():
        raise DefectsegError(f"{folder}: not a review folder (no {PROVENANCE}): `defectseg serve --review-dir` writes one")
    return add_extra_source(Path(folder))
