"""The whole of ``params.yaml``: every section, the checks that span sections, and each model's training recipe."""

from pathlib import Path

from pydantic import ValidationError, model_validator

from defectseg.config.compare import CompareParams
from defectseg.config.data import DataParams
from defectseg.config.evaluate import EvaluateParams
from defectseg.config.loading import PARAMS_FILE, problems, read_yaml
from defectseg.config.losses import LossesParams
from defectseg.config.models import ModelsParams
from defectseg.config.preprocess import PreprocessParams
from defectseg.config.report import ReportParams
from defectseg.config.section import Section
from defectseg.config.train import TrainParams
from defectseg.errors import ParamsError


def _merged(shared: dict, overrides: dict) -> dict:
    """``shared`` with ``overrides`` laid over it, nested sections merged key by key."""
    merged = dict(shared)
    for key, value in overrides.items():
        merged[key] = _merged(shared[key], value) if isinstance(value, dict) and isinstance(shared.get(key), dict) else value
    return merged


class Params(Section):
    data: DataParams
    preprocess: PreprocessParams
    train: TrainParams
    models: ModelsParams
    losses: LossesParams
    compare: CompareParams
    evaluate: EvaluateParams
    report: ReportParams

    def train_for(self, model: str) -> TrainParams:
        """The training settings of ``model``: the shared ``train`` section with the model's own ``train`` keys over it."""
        overrides = getattr(self.models, model).train
        return TrainParams.model_validate(_merged(self.train.model_dump(), overrides)) if overrides else self.train

    @model_validator(mode="after")
    def _model_recipes_are_valid(self) -> "Params":
        for name in ModelsParams.model_fields:
            try:
                self.train_for(name)
            except ValidationError as exc:
                raise ValueError(f"models.{name}.train (over the shared train section): {problems(exc)}") from None
        return self

    @model_validator(mode="after")
    def _tiles_of_several_sizes_train_on_crops(self) -> "Params":
        for name in self.compare.models:
            if self.preprocess.geometry == "scale" and not self.train_for(name).augment.crop_size:
                raise ValueError(f"preprocess.geometry scale keeps tiles at their own sizes: set train.augment.crop_size > 0 (model {name}), so batches hold one size")
        return self

    @model_validator(mode="after")
    def _rotation_needs_square_images(self) -> "Params":
        height, width = self.preprocess.height_width
        square = self.preprocess.geometry == "scale" or height == width
        if any(self.train_for(name).augment.rotate90 > 0 and not (square or self.train_for(name).augment.crop_size) for name in self.compare.models):
            raise ValueError("train.augment.rotate90 needs square images: set it to 0 or make preprocess.image_size square")
        return self

    @model_validator(mode="after")
    def _crop_fits_image(self) -> "Params":
        for name in self.compare.models:
            crop = self.train_for(name).augment.crop_size
            if self.preprocess.geometry == "squash" and crop > min(self.preprocess.height_width):
                raise ValueError(f"train.augment.crop_size {crop} is larger than preprocess.image_size {self.preprocess.height_width} (model {name})")
        return self

    @model_validator(mode="after")
    def _models_fit_image(self) -> "Params":
        for name in self.compare.models:
            crop = self.train_for(name).augment.crop_size
            squashed = list(self.preprocess.height_width) if self.preprocess.geometry == "squash" else []
            sides = [*squashed, *([crop] if crop else [])]
            settings = getattr(self.models, name)
            if any(side % settings.side_multiple for side in sides):
                needed = f"models.{name}.downscale" + (" * 2**depth" if name == "unet" else "")
                raise ValueError(
                    f"preprocess.image_size {self.preprocess.height_width} and train.augment.crop_size must be divisible by "
                    f"{needed} = {settings.side_multiple}"
                )
        return self


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
