"""A U-Net decoder on a pretrained encoder, with an optional full-resolution branch and an optional
image-level "has a defect" head carried as a second output channel.
"""


import torch
from torch import nn

from defectseg.models.blocks import DoubleConv
from defectseg.models.decoder import decode, pad_to_stride, unet_decoder


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


def split_logits(output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A model's output as pixel logits (N, 1, H, W) and, from a model with an image head,
    its image logits (N,); None without one."""
    if output.shape[1] == 1:
        return output, None
    return output[:, :1], output[:, 1].amax((1, 2))
