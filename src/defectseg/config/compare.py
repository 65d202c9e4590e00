"""The ``compare`` section: the matrix of models, losses, seeds and folds the pipeline runs."""

from typing import Annotated

from pydantic import AfterValidator, Field

from defectseg.config.folds import Folds
from defectseg.config.losses import LossName
from defectseg.config.models import ModelName
from defectseg.config.section import Section


def _distinct(values: list) -> list:
    if len(set(values)) != len(values):
        raise ValueError("lists a value twice")
    return values


class CompareParams(Section):
    models: Annotated[list[ModelName], Field(min_length=1), AfterValidator(_distinct)]
    losses: Annotated[list[LossName], Field(min_length=1), AfterValidator(_distinct)]
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1), AfterValidator(_distinct)]
    folds: Folds

    @property
    def fold_count(self) -> int:
        """K: 1 is the single train/val/test split of ``data.split``, K >= 2 is K-fold cross-validation."""
        return len(self.folds)
