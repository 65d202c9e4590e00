"""A saved model run by ONNX Runtime in place of torch, for ``defectseg serve`` and ``predict``.

On the project's 2-core CPU ONNX Runtime ran the MTD configuration's model (MobileNetV2 U-Net with
its image head, 224 px, batches of 8) at 2.1 times torch's images/s, with the same masks on 63
Magnetic Tile images (``bench/serve_runtime.py``). ``OnnxModel`` takes the torch model's place:
normalized (N, 1, H, W) images in, logits out, so the rest of inference (flips, the image head,
the decision) is the same code. The graph is exported once per weights file (keyed by its
SHA-256) into the project's cache (``foundation.cache``: ``~/.cache/defectseg/onnx/``); models trained on tiles of their own sizes
(``preprocess.geometry: scale``) have no one input size to export at and stay on torch.
"""

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from defectseg.data.sources import sha256_of
from defectseg.foundation.atomic import atomic_file
from defectseg.foundation.cache import cache_root
from defectseg.models.model_format import WEIGHTS
from defectseg.models.saved_model import SavedModel

RUNTIMES = ("onnxruntime", "torch")


class OnnxModel(nn.Module):
    """An ONNX Runtime session behind a torch module's call: a float tensor in, a float tensor out."""

    def __init__(self, path: Path):
        super().__init__()
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        (logits,) = self.session.run(None, {"images": np.ascontiguousarray(images.detach().cpu().float().numpy())})
        return torch.from_numpy(logits)


def export_onnx(module: nn.Module, example: torch.Tensor, path: Path, input_name: str) -> None:
    """Write ``module`` (in eval mode) as an ONNX graph to ``path``, atomically: one input
    ``input_name`` shaped as ``example`` but for its batch size, one output ``logits``."""
    with atomic_file(path) as tmp, torch.no_grad():
        program = torch.onnx.export(
            module.eval(), (example,), dynamo=True, input_names=[input_name], output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), verbose=False,
        )  # fmt: skip
        program.save(str(tmp))


def with_runtime(saved: SavedModel, folder: Path, runtime: str) -> SavedModel:
    """``saved`` with its model run by ``runtime``: torch as it is, or ONNX Runtime where the model
    has one input size (else torch)."""
    if runtime == "torch" or "input_size" not in saved.metadata:
        return saved
    path = cache_root() / "onnx" / f"{sha256_of(Path(folder) / WEIGHTS)}.onnx"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(saved.model, torch.zeros(2, 1, *saved.metadata["input_size"]), path, "images")
    return replace(saved, model=OnnxModel(path))
