"""The ``evaluate`` section: how a run's decision is chosen on val and measured."""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from defectseg.config.loading import PARAMS_FILE, load_section
from defectseg.config.section import PositiveInt, Section


class EvaluateParams(Section):
    threshold_steps: Annotated[int, Field(ge=1, le=999)]
    threshold_objective: Literal["pooled", "class_mean"]
    min_region_share: Annotated[float, Field(ge=0.0, lt=1.0)]
    max_false_alarm_rate: Annotated[float, Field(gt=0.0, le=1.0)]
    false_alarm_confidence: Annotated[float, Field(ge=0.0, lt=1.0)]
    flip_tta: bool
    image_score_share: Annotated[float, Field(ge=0.0, le=0.5)]
    measure_train: bool
    worst_overlays: Annotated[int, Field(ge=0, le=100)]
    batch_size: PositiveInt
    device: Literal["auto", "cpu", "cuda", "mps"]


def load_evaluate_params(path: str | Path = PARAMS_FILE) -> EvaluateParams:
    """The ``evaluate`` section of ``params.yaml``, checked alone."""
    return load_section(path, "evaluate", EvaluateParams)
