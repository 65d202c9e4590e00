"""Import torchvision's segmentation models even where its compiled ops cannot load.

Why: the only torchvision wheel for ``torch==2.13.0`` on this package index is a CUDA
build (0.28.0). On a CPU-only torch its ``_C`` extension fails to load, and
``import torchvision`` then dies with "operator torchvision::nms does not exist":
``torchvision/_meta_registrations.py`` registers fake kernels for ``nms`` and ``qnms``
unconditionally, which needs those operator schemas to exist.

The segmentation, ResNet and MobileNetV2 models use none of the compiled ops. So, only when the extension
cannot load, we define the two schemas (with no kernels) before the import; calling
``nms`` then fails with torch's own "no kernel" error instead of breaking every
import. Where a matching torchvision is installed the extension loads and nothing
is changed.
"""

import importlib.util
from pathlib import Path
from types import ModuleType

import torch

_NMS_SCHEMA = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
_PLACEHOLDER_OPS = ("nms", "qnms")


def _extension_loads() -> bool:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    for library in sorted(Path(next(iter(spec.submodule_search_locations))).glob("_C*.so")):
        try:
            torch.ops.load_library(str(library))
            return True
        except OSError:
            return False
    return False


def _define_placeholder_schemas() -> None:
    for name in _PLACEHOLDER_OPS:
        if not _has_schema(name):
            torch.library.define(f"torchvision::{name}", _NMS_SCHEMA)


def _has_schema(name: str) -> bool:
    try:
        torch._C._get_schema(f"torchvision::{name}", "")
        return True
    except RuntimeError:
        return False


def _make_importable() -> None:
    if not _extension_loads():
        _define_placeholder_schemas()


def segmentation_models() -> ModuleType:
    """``torchvision.models.segmentation``, importable on CPU-only torch as well."""
    _make_importable()
    from torchvision.models import segmentation

    return segmentation


def mobilenet_models() -> ModuleType:
    """``torchvision.models.mobilenetv2``, importable on CPU-only torch as well."""
    _make_importable()
    from torchvision.models import mobilenetv2

    return mobilenetv2


def resnet_models() -> ModuleType:
    """``torchvision.models.resnet``, importable on CPU-only torch as well."""
    _make_importable()
    from torchvision.models import resnet

    return resnet


def timm_models() -> ModuleType:
    """``timm`` (which imports torchvision whole), importable on CPU-only torch as well."""
    _make_importable()
    import timm

    return timm
