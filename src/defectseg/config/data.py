"""The ``data`` section: where the raw pairs come from, what a usable pair is, and how they are split."""

from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from defectseg.config.loading import PARAMS_FILE, load_section
from defectseg.config.section import Fraction, PositiveInt, Section


class SyntheticParams(Section):
    count: Annotated[int, Field(ge=6)]
    tile_size: Annotated[int, Field(ge=32, le=4096)]
    free_fraction: Fraction
    exposures: Annotated[int, Field(ge=1, le=12)]
    seed: Annotated[int, Field(ge=0)]


class MtdParams(Section):
    url: str
    sha256: Annotated[str, Field(pattern=r"^([0-9a-f]{64})?$")]


class SplitParams(Section):
    train: Fraction
    val: Fraction
    test: Fraction
    seed: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> "SplitParams":
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1, got {total:g}")
        return self


class GroupParams(Section):
    mtd_frame_gap: Annotated[int, Field(ge=0)]
    near_duplicate_similarity: Annotated[float, Field(gt=0.0, le=1.01)]
    audit_pairs: Annotated[int, Field(ge=0, le=1000)]


class DataParams(Section):
    source: Annotated[str, Field(min_length=1)]
    min_side: Annotated[int, Field(ge=1)]
    max_pixels: PositiveInt
    synthetic: SyntheticParams
    mtd: MtdParams
    split: SplitParams
    groups: GroupParams


def load_data_params(path: str | Path = PARAMS_FILE) -> DataParams:
    """The ``data`` section of ``params.yaml``, checked alone: what the ``prepare`` stage reads."""
    return load_section(path, "data", DataParams)
