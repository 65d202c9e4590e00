"""Segmentation models: every one maps a (N, 1, H, W) image batch to (N, 1, H, W) logits.

- ``unet``: the seed plan's U-Net in pure torch (double 3x3 conv + BatchNorm + ReLU per
  level, transposed-conv up-sampling, skip connections), width and depth as params.
- ``resnet_unet``: a U-Net decoder on a torchvision ResNet-18/34 encoder with a 1-channel
  stem (the architecture of fastai's ``unet_learner`` and segmentation_models.pytorch's
  ``Unet``), from scratch or from pinned pretrained encoder weights (``pretrained``).
- ``deeplabv3_resnet50``, ``fcn_resnet50``, ``lraspp_mobilenet_v3_large``: torchvision
  models built from scratch (no weights are downloaded), with one output channel and
  their first convolution replaced by a 1-channel one for grayscale input.

Any of them can run at a reduced resolution (``downscale``): the input is shrunk by
an area average and the logits are scaled back up, so outputs keep the input's size.
A downscaled U-Net can add a full-resolution branch that refines its logits where fine
detail pays (``Refined``, ``train.refine``).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from defectseg.params import ModelSection, ResnetUnetParams, UnetParams
from defectseg.pretrained import grayscale_stem, load_weights
from defectseg.torchvision_compat import resnet_models, segmentation_models


class ConvBnRelu(nn.Sequential):
    """A 3x3 convolution, BatchNorm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by BatchNorm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        # unpacked, so the layers (and saved state-dict keys) stay flat: 0..5
        super().__init__(*ConvBnRelu(in_channels, out_channels), *ConvBnRelu(out_channels, out_channels))


class UNet(nn.Module):
    """U-Net with widths ``base_width * 2**level`` for ``depth`` down-sampling levels."""

    def __init__(self, base_width: int = 16, depth: int = 4, in_channels: int = 1):
        super().__init__()
        widths = [base_width * 2**level for level in range(depth + 1)]
        self.down = nn.ModuleList([DoubleConv(in_channels, widths[0])])
        self.down.extend(DoubleConv(widths[i], widths[i + 1]) for i in range(depth))
        self.pool = nn.MaxPool2d(2)
        self.upsample = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(depth)))
        self.up = nn.ModuleList(DoubleConv(widths[i] * 2, widths[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], 1, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last decoder level's features, ``base_width`` channels at the input's size."""
        skips = []
        for level, block in enumerate(self.down):
            x = block(x if level == 0 else self.pool(x))
            skips.append(x)
        skips.pop()
        for upsample, block in zip(self.upsample, self.up):
            x = block(torch.cat([skips.pop(), upsample(x)], dim=1))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class TorchvisionSegmenter(nn.Module):
    """A torchvision segmentation model returning the ``out`` logits as a tensor."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def _grayscale_stem(model: nn.Module) -> nn.Module:
    """Replace the first convolution (3 input channels) by the same with 1 channel."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
            setattr(
                parent,
                name.rpartition(".")[2],
                nn.Conv2d(1, module.out_channels, module.kernel_size, module.stride, module.padding, bias=module.bias is not None),
            )
            return model
    raise ValueError("model has no convolution")


class Downscaled(nn.Module):
    """``model`` applied to the input shrunk ``factor`` times, its logits resized back bilinearly.

    Large defects (MTD's uneven surfaces and breaks) need context more than pixel detail,
    so a factor of 2-4 buys many more training steps per minute on a CPU.
    """

    def __init__(self, model: nn.Module, factor: int):
        super().__init__()
        self.model = model
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(F.avg_pool2d(x, self.factor))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


class Refined(nn.Module):
    """A U-Net on the whole image at 1/``factor``, refined by a thin full-resolution branch.

    The coarse U-Net sees the whole image, so large defects keep their context; its
    features and logits are scaled up, and a few full-resolution convolutions add a
    correction to the logits, so thin cracks and small blowholes get pixel detail.
    Training refines only two ``window``-sided squares per image, one where the coarse
    defect logit peaks and one at random (clean surface too), and scales up the coarse
    features only there, which costs a fraction of refining everything; in eval mode the
    whole image is refined.
    """

    def __init__(self, unet: UNet, factor: int, width: int, window: int):
        super().__init__()
        self.coarse = unet
        self.factor, self.window = factor, window
        # context around a training window: at least one pixel per 3x3 convolution of the branch, whole coarse pixels
        self.margin = factor * math.ceil(3 / factor)
        coarse_width = unet.head.in_channels
        self.fine = nn.Sequential(ConvBnRelu(1, width), ConvBnRelu(width, width))
        self.fuse = nn.Sequential(ConvBnRelu(width + coarse_width + 1, width), nn.Conv2d(width, 1, 1))

    def _refine(self, x: torch.Tensor, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits + self.fuse(torch.cat([self.fine(x), features, logits], dim=1))

    def _up(self, coarse: torch.Tensor) -> torch.Tensor:
        return F.interpolate(coarse, scale_factor=self.factor, mode="bilinear", align_corners=False)

    def _corners(self, coarse_logits: torch.Tensor, side: int, height: int, width: int) -> list[tuple[int, int, int]]:
        """(image, top, left) of each training window in a ``height`` x ``width`` image, on whole
        coarse pixels: per image one at the coarse peak, one at random."""
        step = self.factor
        corners = []
        for index, peak in enumerate(coarse_logits.detach().flatten(1).argmax(1).tolist()):
            row, column = divmod(peak, coarse_logits.shape[-1])
            top = min(max(row * step + step // 2 - side // 2, 0), height - side)
            left = min(max(column * step + step // 2 - side // 2, 0), width - side)
            corners.append((index, top // step * step, left // step * step))
            top, left = int(torch.randint(0, (height - side) // step + 1, ())), int(torch.randint(0, (width - side) // step + 1, ()))
            corners.append((index, top * step, left * step))
        return corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coarse = self.coarse.features(F.avg_pool2d(x, self.factor))
        coarse_logits = self.coarse.head(coarse)
        logits = self._up(coarse_logits)
        if not self.training:
            return self._refine(x, self._up(coarse), logits)
        step, margin = self.factor, self.margin
        side = min(self.window, *x.shape[-2:]) // step * step
        span, coarse_margin = side + 2 * margin, margin // step
        corners = self._corners(coarse_logits, side, *x.shape[-2:])
        # replicate-padding the coarse maps matches the clamped edges of scaling up the whole image
        padded_coarse = [F.pad(t, (coarse_margin,) * 4, mode="replicate") for t in (coarse, coarse_logits)]
        padded_x = F.pad(x, (margin,) * 4)

        def windows(tensor: torch.Tensor, scale: int) -> torch.Tensor:
            return torch.stack([tensor[i, :, top // scale : (top + span) // scale, left // scale : (left + span) // scale] for i, top, left in corners])

        features, window_logits = (self._up(windows(t, step)) for t in padded_coarse)
        refined = self._refine(windows(padded_x, 1), features, window_logits)[:, :, margin : margin + side, margin : margin + side]
        out = logits.clone()
        for (i, top, left), patch in zip(corners, refined):
            out[i, :, top : top + side, left : left + side] = patch
        return out


# channels of a basic-block ResNet's (18, 34) stem, layer1, layer2 and layer3 outputs, and of layer4's
RESNET_SKIP_WIDTHS = (64, 64, 128, 256)
RESNET_BOTTOM_WIDTH = 512


class ResNetUNet(nn.Module):
    """A U-Net decoder on a torchvision ResNet encoder with a 1-channel stem.

    The encoder's five stages (strides 2, 4, 8, 16, 32) feed skip connections; each
    decoder level scales up 2x (nearest), joins the skip and applies two 3x3
    convolutions, with widths ``decoder_width * 16 ... decoder_width`` from the bottom
    up. Inputs are padded (edge pixels repeated) to a multiple of 32 and the logits
    cropped back, so any image size works.
    """

    def __init__(self, encoder: str, decoder_width: int):
        super().__init__()
        resnet = getattr(resnet_models(), encoder)(weights=None)
        resnet.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        del resnet.fc, resnet.avgpool
        self.encoder = resnet
        widths = [decoder_width * 2**level for level in reversed(range(5))]
        inputs = [RESNET_BOTTOM_WIDTH, *widths[:-1]]
        skips = [*reversed(RESNET_SKIP_WIDTHS), 0]
        self.decoder = nn.ModuleList(DoubleConv(inputs[i] + skips[i], widths[i]) for i in range(5))
        self.head = nn.Conv2d(widths[-1], 1, 1)

    def load_encoder(self, state: dict[str, torch.Tensor]) -> None:
        """Load ImageNet-style ResNet weights into the encoder (its classifier is dropped)."""
        state = grayscale_stem({k: v for k, v in state.items() if not k.startswith("fc.")}, "conv1.weight")
        self.encoder.load_state_dict(state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = F.pad(x, (0, -width % 32, 0, -height % 32), mode="replicate")
        e = self.encoder
        stem = e.relu(e.bn1(e.conv1(x)))
        skips = [stem]
        y = e.maxpool(stem)
        for layer in (e.layer1, e.layer2, e.layer3):
            y = layer(y)
            skips.append(y)
        y = e.layer4(y)
        for block in self.decoder:
            y = F.interpolate(y, scale_factor=2, mode="nearest")
            y = block(torch.cat([y, skips.pop()], dim=1) if skips else y)
        return self.head(y)[..., :height, :width]


def _resnet_unet(settings: ResnetUnetParams, pretrained: bool) -> ResNetUNet:
    model = ResNetUNet(settings.encoder, settings.decoder_width)
    if pretrained and settings.weights:
        try:
            model.load_encoder(load_weights(settings.weights, settings.weights_sha256))
        except RuntimeError as exc:
            raise ValueError(f"weights {settings.weights} do not fit {settings.encoder}: {str(exc).splitlines()[0]}") from None
    return model


TORCHVISION_MODELS = ("deeplabv3_resnet50", "fcn_resnet50", "lraspp_mobilenet_v3_large")


def _torchvision_model(architecture: str) -> nn.Module:
    factory = getattr(segmentation_models(), architecture)
    kwargs = {"weights": None, "weights_backbone": None, "num_classes": 1}
    if architecture != "lraspp_mobilenet_v3_large":
        kwargs["aux_loss"] = False
    return TorchvisionSegmenter(_grayscale_stem(factory(**kwargs)))


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
        model = _resnet_unet(settings, pretrained)
    elif name in TORCHVISION_MODELS:
        model = _torchvision_model(name)
    else:
        raise ValueError(f"unknown model {name!r}")
    return Downscaled(model, settings.downscale) if settings.downscale > 1 else model
