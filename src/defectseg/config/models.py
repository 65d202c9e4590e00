"""The ``models`` section: each architecture's settings, and the model names."""

from typing import Annotated, Literal

from pydantic import Field, model_validator

from defectseg.config.section import Downscale, Section, Sha256

ModelName = Literal["unet", "resnet_unet", "mobilenet_unet", "efficientnet_unet", "deeplabv3_resnet50", "fcn_resnet50", "lraspp_mobilenet_v3_large"]


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


class EfficientNetUnetParams(EncoderUnetParams):
    """``efficientnet_unet``'s settings: which EfficientNet-Lite encoder (1.0x, 1.0x-deeper-and-larger-input, 1.1x wide)."""

    variant: Literal["lite0", "lite1", "lite2"] = "lite0"


class ModelsParams(Section):
    unet: UnetParams
    resnet_unet: ResnetUnetParams
    mobilenet_unet: EncoderUnetParams
    efficientnet_unet: EfficientNetUnetParams
    deeplabv3_resnet50: ModelSection
    fcn_resnet50: ModelSection
    lraspp_mobilenet_v3_large: ModelSection


def model_settings(name: str, raw: dict) -> ModelSection:
    """A model's settings section, validated by the class its name takes (as saved in ``model.json``)."""
    return ModelsParams.model_fields[name].annotation.model_validate(raw)
