"""Reading ``params.yaml`` and validating one section of it, with one ``ParamsError`` line naming each offending key."""

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from defectseg.errors import ParamsError

PARAMS_FILE = "params.yaml"
Model = TypeVar("Model", bound=BaseModel)


def format_error(error: dict) -> str:
    """One pydantic error as ``dotted.key: problem``."""
    message = error["msg"].removeprefix("Value error, ")
    if not error["loc"]:
        return message
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    if error["type"] == "missing":
        return f"{key}: missing"
    if isinstance(error["input"], dict):
        return f"{key}: {message}"
    return f"{key}: {message} (got {error['input']!r})"


def read_yaml(path: Path) -> object:
    """A YAML file's content; a missing or malformed file is one ``ParamsError`` line."""
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None


def problems(exc: ValidationError, prefix: tuple[str, ...] = ()) -> str:
    """Every error of a failed validation, each as ``dotted.key: problem`` under ``prefix``, joined by "; "."""
    return "; ".join(format_error({**e, "loc": (*prefix, *e["loc"])}) for e in exc.errors(include_url=False))


def load_section(path: str | Path, key: str, model: type[Model]) -> Model:
    """Read ``params.yaml`` and validate its ``key`` section only (a dotted key reaches into a
    section): what a stage that reads no other section checks, so the schema of the other
    sections is not among its dependencies."""
    path, raw = Path(path), read_yaml(Path(path))
    value = raw
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ParamsError(f"{path}: {key}: missing")
        value = value[part]
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise ParamsError(f"{path}: {problems(exc, tuple(key.split('.')))}") from None
