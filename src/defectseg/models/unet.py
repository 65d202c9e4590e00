"""The seed plan's U-Net in pure torch: double 3x3 conv + BatchNorm + ReLU per level, transposed-conv
up-sampling, skip connections; width and depth as params.
"""


import torch
from torch import nn

from defectseg.models.blocks import DoubleConv


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
