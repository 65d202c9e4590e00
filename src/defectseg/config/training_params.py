"""The sections of ``params.yaml`` a training run reads, the checks that span them, and each model's training recipe.

The train stage loads these alone (``load_training_params``), so the schemas of the sections it
does not read (data, evaluate, report: ``config.params``) are not among its dependencies, and an
edit to them re-runs no training. The other sections are checked by the stages that read them.
"""

from pathlib import Path

from pydantic import ValidationError, model_validator

from defectseg.config.compare import CompareParams
from defectseg.config.loading import PARAMS_FILE, problems, read_yaml
from defectseg.config.losses import LossesParams
from defectseg.config.models import ModelsParams
from defectseg.config.preprocess import PreprocessParams
from defectseg.config.section import Section
from defectseg.config.train import TrainParams
from defectseg.errors import ParamsError


def _merged(shared: dict, overrides: dict) -> dict:
    """``shared`` with ``overrides`` laid over it, nested sections merged key by key."""
    merged = dict(shared)
    for key, value in overrides.items():
        merged[key] = _merged(shared[key], value) if isinstance(value, dict) and isinstance(shared.get(key), dict) else value
    return merged


class TrainingParams(Section):
    """The sections training reads (``Params`` adds the others), with the checks that span them."""

    preprocess: PreprocessParams
    train: TrainParams
    models: ModelsParams
    losses: LossesParams
    compare: CompareParams

    def train_for(self, model: str) -> TrainParams:
        """The training settings of ``model``: the shared ``train`` section with the model's own ``train`` keys over it."""
        overrides = getattr(self.models, model).train
        return TrainParams.model_validate(_merged(self.train.model_dump(), overrides)) if overrides else self.train

    @model_validator(mode="after")
    def _model_recipes_are_valid(self) -> "TrainingParams":
        for name in ModelsParams.model_fields:
            try:
                self.train_for(name)
            except ValidationError as exc:
                raise ValueError(f"models.{name}.train (over the shared train section): {problems(exc)}") from None
        return self

    @model_validator(mode="after")
    def _tiles_of_several_sizes_train_on_crops(self) -> "TrainingParams":
        for name in self.compare.models:
            if self.preprocess.geometry == "scale" and not self.train_for(name).augment.crop_size:
                raise ValueError(f"preprocess.geometry scale keeps tiles at their own sizes: set train.augment.crop_size > 0 (model {name}), so batches hold one size")
        return self

    @model_validator(mode="after")
    def _rotation_needs_square_images(self) -> "TrainingParams":
        height, width = self.preprocess.height_width
        square = self.preprocess.geometry == "scale" or height == width
        if any(self.train_for(name).augment.rotate90 > 0 and not (square or self.train_for(name).augment.crop_size) for name in self.compare.models):
            raise ValueError("train.augment.rotate90 needs square images: set it to 0 or make preprocess.image_size square")
        return self

    @model_validator(mode="after")
    def _crop_fits_image(self) -> "TrainingParams":
        for name in self.compare.models:
            crop = self.train_for(name).augment.crop_size
            if self.preprocess.geometry == "squash" and crop > min(self.preprocess.height_width):
                raise ValueError(f"train.augment.crop_size {crop} is larger than preprocess.image_size {self.preprocess.height_width} (model {name})")
        return self

    @model_validator(mode="after")
    def _models_fit_image(self) -> "TrainingParams":
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


def load_training_params(path: str | Path = PARAMS_FILE) -> TrainingParams:
    """Read ``params.yaml`` and validate the sections training reads."""
    path = Path(path)
    raw = read_yaml(path)
    sections = {key: value for key, value in raw.items() if key in TrainingParams.model_fields} if isinstance(raw, dict) else raw
    try:
        return TrainingParams.model_validate(sections)
    except ValidationError as exc:
        raise ParamsError(f"{path}: {problems(exc)}") from None
