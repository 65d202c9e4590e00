"""Running a model below the input's resolution (``downscale``), and a full-resolution branch that
refines a downscaled U-Net's logits where fine detail pays (``models.unet.refine``).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from defectseg.models.blocks import ConvBnRelu
from defectseg.models.unet import UNet


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
