"""Export a trained model to a file that runs without this package (TorchScript or ONNX).

The exported graph includes the pixel normalization: its input is a float32 batch
(N, 1, H, W) of raw pixel values 0-255 at the model's input size (``model.json``), and
its output is the defect logits (N, 1, H, W). Apply a sigmoid and the threshold from
``threshold.json`` to get a mask. A model with an image head outputs (N, 2, H, W): channel 1
holds its image logit at every pixel (``models.split_logits``), which gates the tile.
"""

from pathlib import Path

import torch
from torch import nn

from defectseg.errors import DefectsegError
from defectseg.foundation.atomic import atomic_file, check_output_path
from defectseg.models.onnx_runtime import export_onnx
from defectseg.models.saved_model import load_model


class Deployable(nn.Module):
    """The model with its normalization built in: raw pixels in, logits out."""

    def __init__(self, model: nn.Module, mean: float, std: float):
        super().__init__()
        self.model = model
        self.mean = mean
        self.std = std

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model((pixels / 255.0 - self.mean) / self.std)


def deployable(model_path: Path) -> tuple[Deployable, torch.Tensor]:
    """The deployable module in eval mode and an example input batch of two images."""
    saved = load_model(model_path)
    module = Deployable(saved.model, saved.normalization.mean, saved.normalization.std).eval()
    if "input_size" not in saved.metadata:
        raise DefectsegError(f"{model_path}: trained with preprocess.geometry scale (tiles at their own sizes); export takes models of one input size")
    height, width = saved.metadata["input_size"]
    example = torch.rand(2, 1, height, width, generator=torch.Generator().manual_seed(0)) * 255
    return module, example


def export_model(model_path: Path, fmt: str, out: Path) -> Path:
    """Write the model as ``fmt`` (torchscript or onnx) to ``out``, atomically."""
    check_output_path(Path(out), folder=False, option="--out")
    module, example = deployable(model_path)
    if fmt == "onnx":
        export_onnx(module, example, Path(out), "pixels")
    elif fmt == "torchscript":
        with atomic_file(Path(out)) as tmp, torch.no_grad():
            torch.jit.trace(module, example).save(str(tmp))
    else:
        raise ValueError(f"unknown export format {fmt!r}")
    return Path(out)
