"""``mobilenet_unet``: an ``EncoderUNet`` on torchvision's MobileNetV2 features, by default from
torchvision's ImageNet weights (pinned by URL and SHA-256).
"""


import torch
from torch import nn

from defectseg.models.encoder_unet import EncoderUNet
from defectseg.models.pretrained import grayscale_stem
from defectseg.models.torchvision_compat import mobilenet_models

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
