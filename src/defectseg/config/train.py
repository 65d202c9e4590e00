"""The ``train`` section: epochs, batches, sampling, copy-paste, optimizer and schedule, devices, augmentation."""

from typing import Annotated, Literal

from pydantic import Field, model_validator

from defectseg.config.section import Fraction, NonNegativeFloat, PositiveFloat, PositiveInt, Section


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
