"""The ``report`` section: the bootstrap behind every interval and verdict."""

from typing import Annotated

from pydantic import Field

from defectseg.config.section import Section


class ReportParams(Section):
    bootstrap_samples: Annotated[int, Field(ge=100)]
    bootstrap_seed: Annotated[int, Field(ge=0)]
    confidence: Annotated[float, Field(gt=0.5, lt=1.0)]
