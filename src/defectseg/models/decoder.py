"""The U-Net decoder shared by the encoder U-Nets: five levels for a stride-32 encoder, each
scaling up 2x and joining a skip; inputs padded to the encoder's stride.
"""


import torch
import torch.nn.functional as F
from torch import nn

from defectseg.models.blocks import DoubleConv

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
