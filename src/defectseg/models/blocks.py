"""Convolution blocks shared by the U-Nets: 3x3 convolution, BatchNorm and ReLU, once or twice."""

from torch import nn


class ConvBnRelu(nn.Sequential):
    """A 3x3 convolution, BatchNorm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by BatchNorm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        # unpacked, so the layers (and saved state-dict keys) stay flat: 0..5
        super().__init__(*ConvBnRelu(in_channels, out_channels), *ConvBnRelu(out_channels, out_channels))
