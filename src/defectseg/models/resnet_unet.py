"""``resnet_unet``: a U-Net decoder on a torchvision ResNet-18/34 encoder with a 1-channel stem (the
architecture of fastai's ``unet_learner`` and segmentation_models.pytorch's ``Unet``).
"""


import torch
from torch import nn

from defectseg.models.decoder import decode, pad_to_stride, unet_decoder
from defectseg.models.pretrained import grayscale_stem
from defectseg.models.torchvision_compat import resnet_models

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
