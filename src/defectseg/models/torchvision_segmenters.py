"""``deeplabv3_resnet50``, ``fcn_resnet50``, ``lraspp_mobilenet_v3_large``: torchvision models built
from scratch (no weights downloaded), one output channel, a 1-channel first convolution.
"""

import torch
from torch import nn

from defectseg.models.torchvision_compat import segmentation_models


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


TORCHVISION_MODELS = ("deeplabv3_resnet50", "fcn_resnet50", "lraspp_mobilenet_v3_large")


def _torchvision_model(architecture: str) -> nn.Module:
    factory = getattr(segmentation_models(), architecture)
    kwargs = {"weights": None, "weights_backbone": None, "num_classes": 1}
    if architecture != "lraspp_mobilenet_v3_large":
        kwargs["aux_loss"] = False
    return TorchvisionSegmenter(_grayscale_stem(factory(**kwargs)))
