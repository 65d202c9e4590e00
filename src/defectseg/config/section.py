"""The base of every params section (unknown keys and loose types are errors) and the value types the sections share."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


PositiveInt = Annotated[int, Field(gt=0)]


PositiveFloat = Annotated[float, Field(gt=0.0)]


NonNegativeFloat = Annotated[float, Field(ge=0.0)]


Downscale = Annotated[int, Field(ge=1, le=16)]


Sha256 = Annotated[str, Field(pattern=r"^([0-9a-f]{64})?$")]


class Section(BaseModel):
    """Base of every params section: unknown keys and loose types are errors.

    Validators are built at first use, not at import (``defer_build``), so a stage that
    checks one section (``prepare``: ``load_data_params``) does not
    pay for building all of them."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)
