"""Each model builds from scratch, maps (N, 1, H, W) to logits of the same size, and trains."""

import subprocess
import sys

import pytest
import torch

from defectseg.models import Refined, ResNetUNet, build_model
from defectseg.params import ModelSection, model_settings

DEFAULTS = {
    "unet": {"base_width": 4, "depth": 2, "downscale": 1, "refine": {"width": 0, "window": 16}},
    "resnet_unet": {"encoder": "resnet18", "decoder_width": 4, "downscale": 1, "weights": "", "weights_sha256": ""},
}


def settings(name: str, **changes) -> ModelSection:
    """The settings section of ``name``: small defaults, with ``changes``."""
    return model_settings(name, {**DEFAULTS.get(name, {"downscale": 1}), **changes})


@pytest.mark.parametrize(
    ("name", "downscale"),
    [
        ("unet", 1),
        ("resnet_unet", 1),
        ("deeplabv3_resnet50", 1),
        ("fcn_resnet50", 1),
        ("lraspp_mobilenet_v3_large", 1),
        ("unet", 4),
        ("resnet_unet", 4),
        ("lraspp_mobilenet_v3_large", 4),
    ],
)
def test_model_returns_logits_at_input_size_and_trains(name, downscale):
    torch.manual_seed(0)
    model = build_model(name, settings(name, downscale=downscale))
    images = torch.randn(2, 1, 64, 48)
    logits = model(images)
    assert logits.shape == (2, 1, 64, 48)
    logits.mean().backward()
    assert sum(float(p.grad.abs().sum()) for p in model.parameters() if p.grad is not None) > 0


def test_unet_widths_follow_base_width_and_depth():
    model = build_model("unet", settings("unet", base_width=8, depth=3))
    assert [block[0].out_channels for block in model.down] == [8, 16, 32, 64]


@pytest.mark.parametrize(("encoder", "blocks"), [("resnet18", [2, 2, 2, 2]), ("resnet34", [3, 4, 6, 3])])
def test_resnet_unet_has_a_one_channel_stem_and_the_encoders_blocks(encoder, blocks):
    model = build_model("resnet_unet", settings("resnet_unet", encoder=encoder, decoder_width=16))
    assert model.encoder.conv1.in_channels == 1
    assert [len(getattr(model.encoder, f"layer{i}")) for i in range(1, 5)] == blocks
    assert [block[0].out_channels for block in model.decoder] == [256, 128, 64, 32, 16]
    assert not hasattr(model.encoder, "fc")


@pytest.mark.parametrize(("size", "padded"), [((57, 91), (64, 96)), ((100, 70), (128, 96))])
def test_resnet_unet_pads_by_repeating_edges_and_crops_the_logits_back(size, padded):
    torch.manual_seed(0)
    model = ResNetUNet("resnet18", 4).eval()
    image = torch.randn(1, 1, *size)
    outside = torch.nn.functional.pad(image, (0, padded[1] - size[1], 0, padded[0] - size[0]), mode="replicate")
    with torch.no_grad():
        logits, logits_of_padded = model(image), model(outside)
    assert logits.shape == (1, 1, *size)
    assert torch.allclose(logits, logits_of_padded[..., : size[0], : size[1]], atol=1e-5)


def test_downscaled_unet_sees_the_area_averaged_image():
    model = build_model("unet", settings("unet", downscale=2)).eval()
    seen = []
    model.model.register_forward_hook(lambda module, inputs, output: seen.append((inputs[0], output)))
    images = torch.arange(32 * 32, dtype=torch.float32).reshape(1, 1, 32, 32)
    with torch.no_grad():
        logits = model(images)
    inner_input, inner_logits = seen[0]
    assert inner_input.shape == (1, 1, 16, 16)
    assert float(inner_input[0, 0, 0, 0]) == (0 + 1 + 32 + 33) / 4
    corners = logits[0, 0, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert torch.allclose(corners, inner_logits[0, 0, [0, 0, -1, -1], [0, -1, 0, -1]])


def refined_unet(window: int = 16) -> Refined:
    torch.manual_seed(0)
    return build_model("unet", settings("unet", downscale=4, refine={"width": 4, "window": window}))


def test_refined_unet_returns_logits_at_input_size_and_trains_both_branches():
    model = refined_unet()
    logits = model(torch.randn(2, 1, 64, 48))
    assert logits.shape == (2, 1, 64, 48)
    logits.mean().backward()
    for branch in (model.coarse, model.fine, model.fuse):
        assert sum(float(p.grad.abs().sum()) for p in branch.parameters()) > 0


def test_refined_unet_trains_on_two_windows_and_refines_everything_in_eval():
    model = refined_unet(window=16)
    images = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        coarse = model.coarse.features(torch.nn.functional.avg_pool2d(images, 4))
        coarse_logits = torch.nn.functional.interpolate(model.coarse.head(coarse), size=(64, 64), mode="bilinear", align_corners=False)
        trained = model.train()(images)
        evaluated = model.eval()(images)
    changed = (trained != coarse_logits)[0, 0]
    assert 0 < changed.sum() <= 2 * 16 * 16
    assert (evaluated != coarse_logits).float().mean() > 0.9


def test_refine_needs_a_downscaled_unet():
    with pytest.raises(ValueError, match="refine.width > 0 needs downscale > 1"):
        settings("unet", refine={"width": 4, "window": 16})


def test_unknown_model_name_is_refused():
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        build_model("resnet", settings("unet"))


def test_torchvision_segmentation_imports_in_a_fresh_interpreter():
    code = (
        "from defectseg.torchvision_compat import segmentation_models, _extension_loads\n"
        "segmentation_models().fcn_resnet50(weights=None, weights_backbone=None, num_classes=1)\n"
        "import torch, torchvision\n"
        "if not _extension_loads():\n"
        "    try:\n"
        "        torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)\n"
        "    except (NotImplementedError, RuntimeError) as exc:\n"
        "        print('nms unavailable:', type(exc).__name__)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")
