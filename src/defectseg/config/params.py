"""The whole of ``params.yaml``: the sections training reads (``config.training_params``) and the others."""

from pathlib import Path

from pydantic import ValidationError

from defectseg.config.data import DataParams
from defectseg.config.evaluate import EvaluateParams
from defectseg.config.loading import PARAMS_FILE, problems, read_yaml
from defectseg.config.report import ReportParams
from defectseg.config.training_params import TrainingParams
from defectseg.errors import ParamsError


class Params(TrainingParams):
    data: DataParams
    evaluate: EvaluateParams
    report: ReportParams


def parse_params(raw: object, source: str = PARAMS_FILE) -> Params:
    """Validate an already-loaded params mapping."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(f"{source}: {problems(exc)}") from None


def apply_overrides(raw: dict, overrides: dict) -> dict:
    """Set dotted keys (``{"train.lr": 0.01}``) in a loaded params mapping; unknown keys are errors."""
    for dotted, value in overrides.items():
        *parents, last = dotted.split(".")
        node = raw
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
            if node is None:
                raise ParamsError(f"override {dotted}: {key} is not a params section")
        node[last] = value
    return raw


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate ``params.yaml``."""
    path = Path(path)
    return parse_params(read_yaml(path), str(path))
