"""The folds of ``compare.folds``: 0..K-1, K = 1 for one train/val/test split, K >= 2 for K-fold
cross-validation. Apart from the rest of the ``compare`` section, since ``prepare`` reads it alone."""

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field

from defectseg.config.loading import PARAMS_FILE, load_section
from defectseg.config.section import Section


def _count_from_zero(folds: list[int]) -> list[int]:
    if folds != list(range(len(folds))):
        raise ValueError("must be 0..K-1 for K folds, e.g. [0, 1, 2] for 3")
    return folds


Folds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1, max_length=20), AfterValidator(_count_from_zero)]


class FoldsOnly(Section):
    """The ``compare`` section as ``prepare`` reads it: its ``folds`` alone, the other keys not checked here."""

    model_config = ConfigDict(extra="ignore")
    folds: Folds


def load_fold_count(path: str | Path = PARAMS_FILE) -> int:
    """K, the number of entries of ``compare.folds`` in ``params.yaml``, checked alone."""
    return len(load_section(path, "compare", FoldsOnly).folds)
