"""The schema of ``params.yaml``: every key typed, range-checked, and nothing unknown.

Loading fails with one ``ParamsError`` line that names each offending key.
"""

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from defectseg.errors import ParamsError

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]


class Section(BaseModel):
    """Base of every params section: unknown keys and loose types are errors.

    Validators are built at first use, not at import (``defer_build``), so a stage that
    checks one section (the always-run ``source`` stage: ``load_data_params``) does not
    pay for building all of them."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


class SyntheticParams(Section):
    count: Annotated[int, Field(ge=6)]
    tile_size: Annotated[int, Field(ge=32, le=4096)]
    free_fraction: Fraction
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


class DataParams(Section):
    source: Annotated[str, Field(min_length=1)]
    min_side: Annotated[int, Field(ge=1)]
    max_pixels: PositiveInt
    synthetic: SyntheticParams
    mtd: MtdParams
    split: SplitParams


class PreprocessParams(Section):
    geometry: Literal["squash", "scale"]
    image_size: Annotated[int, Field(ge=16, le=4096)] | Annotated[list[Annotated[int, Field(ge=16, le=4096)]], Field(min_length=2, max_length=2)]
    scale: Annotated[float, Field(gt=0.0, le=4.0)]
    mask_threshold: Annotated[int, Field(ge=0, le=254)]
    mask_coverage: Annotated[float, Field(gt=0.0, le=1.0)]

    @property
    def height_width(self) -> tuple[int, int]:
        """The squash target size as (height, width)."""
        if isinstance(self.image_size, int):
            return self.image_size, self.image_size
        return self.image_size[0], self.image_size[1]

    def size_for(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) a tile of ``height`` x ``width`` is resized to: ``image_size`` with
        geometry squash; with geometry scale, its own size times ``scale`` (aspect ratio kept)."""
        if self.geometry == "squash":
            return self.height_width
        return max(1, round(height * self.scale)), max(1, round(width * self.scale))


LossName = Literal["bce", "dice", "dicebce", "focal", "tversky"]
ModelName = Literal["unet", "resnet_unet", "mobilenet_unet", "efficientnet_unet", "deeplabv3_resnet50", "fcn_resnet50", "lraspp_mobilenet_v3_large"]
PositiveFloat = Annotated[float, Field(gt=0.0)]
NonNegativeFloat = Annotated[float, Field(ge=0.0)]
Downscale = Annotated[int, Field(ge=1, le=16)]
Sha256 = Annotated[str, Field(pattern=r"^([0-9a-f]{64})?$")]


class RefineParams(Section):
    width: Annotated[int, Field(ge=0, le=256)]
    window: Annotated[int, Field(ge=8, le=4096)]


class ModelSection(Section):
    """A model's settings; every model can run at 1/``downscale`` of the input resolution.

    ``train`` holds the model's own training recipe: keys of the shared ``train`` section
    that this model trains with instead (``Params.train_for``); absent or empty, it trains
    on the shared section as it is.
    """

    downscale: Downscale
    train: dict[str, object] = Field(default_factory=dict)

    @property
    def side_multiple(self) -> int:
        """Image sides must divide by this."""
        return self.downscale

    @property
    def has_image_head(self) -> bool:
        """Whether the model has an image-level "has a defect" head (only an ``EncoderUNet`` can)."""
        return False


class UnetParams(ModelSection):
    base_width: Annotated[int, Field(ge=1, le=256)]
    depth: Annotated[int, Field(ge=1, le=6)]
    refine: RefineParams

    @model_validator(mode="after")
    def _refine_needs_downscale(self) -> "UnetParams":
        if self.refine.width and self.downscale == 1:
            raise ValueError("refine.width > 0 needs downscale > 1 (it refines a downscaled U-Net)")
        return self

    @property
    def side_multiple(self) -> int:
        """Image sides must divide by this."""
        return self.downscale * 2**self.depth


class PretrainedEncoderSection(ModelSection):
    """A U-Net decoder on a torchvision encoder, from scratch or from pinned weights. Its
    input is padded to the encoder's stride inside the model, so only ``downscale``
    constrains image sides."""

    decoder_width: Annotated[int, Field(ge=1, le=256)]
    weights: str
    weights_sha256: Sha256

    @model_validator(mode="after")
    def _weights_need_a_hash(self) -> "PretrainedEncoderSection":
        if self.weights and not self.weights_sha256:
            raise ValueError("weights needs weights_sha256 (the SHA-256 of the file, to pin it)")
        return self


class ResnetUnetParams(PretrainedEncoderSection):
    encoder: Literal["resnet18", "resnet34"]


class EncoderUnetParams(PretrainedEncoderSection):
    """``EncoderUNet``'s settings (``mobilenet_unet``, ``efficientnet_unet``)."""

    image_head_weight: Annotated[float, Field(ge=0.0, le=10.0)] = 0.0
    full_resolution_width: Annotated[int, Field(ge=0, le=64)] = 0

    @property
    def has_image_head(self) -> bool:
        """Whether the model has an image-level "has a defect" head (its loss weight is not 0)."""
        return self.image_head_weight > 0



class ModelsParams(Section):
    unet: UnetParams
    resnet_unet: ResnetUnetParams
    mobilenet_unet: EncoderUnetParams
    efficientnet_unet: EncoderUnetParams
    deeplabv3_resnet50: ModelSection
    fcn_resnet50: ModelSection
    lraspp_mobilenet_v3_large: ModelSection


def model_settings(name: str, raw: dict) -> ModelSection:
    """A model's settings section, validated by the class its name takes (as saved in ``model.json``)."""
    return ModelsParams.model_fields[name].annotation.model_validate(raw)


class AugmentParams(Section):
    crop_size: Annotated[int, Field(ge=0)]
    crop_defect_share: Fraction
    hflip: Fraction
    vflip: Fraction
    rotate90: Fraction
    brightness_contrast: Fraction
    brightness_contrast_limit: Fraction
    shift: Fraction
    shift_limit: Annotated[float, Field(ge=0.0, le=0.5)]


class CopyPasteParams(Section):
    shares: dict[str, Fraction]
    poisson_share: Fraction

    @model_validator(mode="after")
    def _shares_fit_one_epoch(self) -> "CopyPasteParams":
        if sum(self.shares.values()) > 1 + 1e-9:
            raise ValueError(f"shares sum to {sum(self.shares.values()):g}: at most 1 (each defect-free tile takes at most one paste)")
        return self


class TrainParams(Section):
    epochs: PositiveInt
    val_every: PositiveInt
    batch_size: Annotated[int, Field(ge=2)]
    free_sample_share: Annotated[float, Field(gt=0.0, le=1.0)]
    class_balance: Fraction
    copy_paste: CopyPasteParams
    optimizer: Literal["adam", "adamw"]
    lr: PositiveFloat
    weight_decay: NonNegativeFloat
    schedule: Literal["cosine", "constant", "onecycle"]
    warmup_epochs: Annotated[int, Field(ge=0)]
    encoder_lr_scale: Annotated[float, Field(gt=0.0, le=1.0)]
    freeze_encoder_epochs: Annotated[int, Field(ge=0)]
    ema_decay: Annotated[float, Field(ge=0.0, lt=1.0)]
    device: Literal["auto", "cpu", "cuda", "mps"]
    loader_workers: Literal["auto"] | Annotated[int, Field(ge=0, le=64)]
    threads: Literal["auto"] | Annotated[int, Field(ge=1, le=256)]
    processes: Annotated[int, Field(ge=1, le=64)]
    nodes: Annotated[int, Field(ge=1, le=64)]
    precision: Literal["fp32", "bf16"]
    channels_last: bool
    augment: AugmentParams

    @model_validator(mode="after")
    def _schedule_fits_epochs(self) -> "TrainParams":
        if (self.schedule == "onecycle") != (self.warmup_epochs > 0):
            raise ValueError("warmup_epochs is the onecycle schedule's warm-up: at least 1 with onecycle, 0 otherwise")
        if self.warmup_epochs >= self.epochs or self.freeze_encoder_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs and freeze_encoder_epochs must be fewer than epochs ({self.epochs})")
        return self


OverlapReduction = Literal["defect_images", "batch", "image"]


class BceParams(Section):
    pos_weight: PositiveFloat


class DiceParams(Section):
    smooth: PositiveFloat
    reduction: OverlapReduction


class DiceBceParams(Section):
    dice_weight: NonNegativeFloat
    bce_weight: NonNegativeFloat
    pos_weight: PositiveFloat
    smooth: PositiveFloat
    reduction: OverlapReduction


class FocalParams(Section):
    alpha: Fraction
    gamma: NonNegativeFloat


class TverskyParams(Section):
    alpha: Fraction
    beta: Fraction
    smooth: PositiveFloat
    reduction: OverlapReduction


class LossesParams(Section):
    bce: BceParams
    dice: DiceParams
    dicebce: DiceBceParams
    focal: FocalParams
    tversky: TverskyParams


def _distinct(values: list) -> list:
    if len(set(values)) != len(values):
        raise ValueError("lists a value twice")
    return values


class CompareParams(Section):
    models: Annotated[list[ModelName], Field(min_length=1), AfterValidator(_distinct)]
    losses: Annotated[list[LossName], Field(min_length=1), AfterValidator(_distinct)]
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1), AfterValidator(_distinct)]
    folds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1, max_length=20)]

    @model_validator(mode="after")
    def _folds_count_from_zero(self) -> "CompareParams":
        if self.folds != list(range(len(self.folds))):
            raise ValueError(f"folds must be 0..K-1 for K folds, e.g. [0, 1, 2] for 3 (got {self.folds})")
        return self

    @property
    def fold_count(self) -> int:
        """K: 1 is the single train/val/test split of ``data.split``, K >= 2 is K-fold cross-validation."""
        return len(self.folds)


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


class ReportParams(Section):
    bootstrap_samples: Annotated[int, Field(ge=100)]
    bootstrap_seed: Annotated[int, Field(ge=0)]
    confidence: Annotated[float, Field(gt=0.5, lt=1.0)]


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
                problems = "; ".join(_format_error(e) for e in exc.errors(include_url=False))
                raise ValueError(f"models.{name}.train (over the shared train section): {problems}") from None
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


def _format_error(error: dict) -> str:
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


def parse_params(raw: object, source: str = "params.yaml") -> Params:
    """Validate an already-loaded params mapping."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_format_error(e) for e in exc.errors(include_url=False))
        raise ParamsError(f"{source}: {problems}") from None


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


def _read_yaml(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``."""
    path = Path(path)
    return parse_params(_read_yaml(path), str(path))


def load_data_params(path: str | Path = "params.yaml") -> DataParams:
    """Read and validate the ``data`` section of ``params.yaml`` only: what the always-run
    ``source`` stage reads, checked as strictly, at a fraction of the cost on every ``dvc repro``."""
    path, raw = Path(path), _read_yaml(Path(path))
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), dict):
        raise ParamsError(f"{path}: data: missing")
    try:
        return DataParams.model_validate(raw["data"])
    except ValidationError as exc:
        problems = "; ".join(_format_error({**e, "loc": ("data", *e["loc"])}) for e in exc.errors(include_url=False))
        raise ParamsError(f"{path}: {problems}") from None
