"""Pretrained encoder weights: from an http(s) URL (downloaded once into a cache) or a
local file, always pinned by SHA-256.

The cache is torch's own (``$TORCH_HOME/hub/checkpoints``, as torchvision's weights
use), so weights fetched once serve every run and every clone on the machine. A file
whose hash differs from the pinned one is refused, and a bad download is not kept.
"""

import sys
from pathlib import Path
from urllib.parse import urlparse

import torch

from defectseg.errors import DataError
from defectseg.sources import download, sha256_of


def cache_dir() -> Path:
    """Where downloaded weights are kept: ``torch.hub.get_dir()/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _is_url(source: str) -> bool:
    return urlparse(source).scheme in ("http", "https")


def weights_file(source: str, sha256: str) -> Path:
    """The local file holding the weights named by ``source``, checked against ``sha256``."""
    if not _is_url(source):
        path = Path(source).expanduser()
        if not path.is_file():
            raise DataError(path, "weights file does not exist")
        actual = sha256_of(path)
        if actual != sha256:
            raise DataError(path, f"SHA-256 mismatch: expected {sha256}, got {actual}")
        return path
    name = Path(urlparse(source).path).name or "weights.pth"
    path = cache_dir() / f"{sha256[:16]}-{name}"
    if path.is_file() and sha256_of(path) == sha256:
        return path
    print(f"downloading {source} to {path}", file=sys.stderr)
    download(source, path, sha256)
    return path


def load_weights(source: str, sha256: str) -> dict[str, torch.Tensor]:
    """The state dict named by ``source``, after checking its hash (``weights_only`` loading)."""
    path = weights_file(source, sha256)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        raise DataError(path, f"not a PyTorch state dict ({str(exc).splitlines()[0]})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(path, "not a PyTorch state dict (a mapping of names to tensors)")
    return state


def grayscale_stem(state: dict[str, torch.Tensor], key: str) -> dict[str, torch.Tensor]:
    """``state`` with the RGB kernel at ``key`` folded to one input channel (summed over
    red, green and blue), so a gray image gives the response the RGB image gray on all
    three channels would."""
    weight = state[key]
    if weight.shape[1] == 1:
        return state
    return {**state, key: weight.sum(dim=1, keepdim=True)}
