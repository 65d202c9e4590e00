"""Each model builds from scratch, maps (N, 1, H, W) to logits of the same size, and trains."""

import subprocess
import sys

import pytest
import torch

from defectseg.config.models import ModelSection, model_settings
from defectseg.models.factory import build_model
from defectseg.models.mobilenet_unet import MobileNetUNet
from defectseg.models.resnet_unet import ResNetUNet
from defectseg.models.resolution import Refined, paste_windows, windows
from defectseg.models.torchvision_compat import mobilenet_models

DEFAULTS = {
    "unet": {"base_width": 4, "depth": 2, "downscale": 1, "refine": {"width": 0, "window": 16}},
    "resnet_unet": {"encoder": "resnet18", "decoder_width": 4, "downscale": 1, "weights": "", "weights_sha256": ""},
    "mobilenet_unet": {"decoder_width": 4, "downscale": 1, "weights": "", "weights_sha256": ""},
}


def settings(name: str, **changes) -> ModelSection:
    """The settings section of ``name``: small defaults, with ``changes``."""
    return model_settings(name, {**DEFAULTS.get(name, {"downscale": 1}), **changes})


@pytest.mark.parametrize(
    ("name", "downscale"),
    [
        ("unet", 1),
        ("resnet_unet", 1),
        ("mobilenet_unet", 1),
        ("deeplabv3_resnet50", 1),
        ("fcn_resnet50", 1),
        ("lraspp_mobilenet_v3_large", 1),
        ("unet", 4),
        ("resnet_unet", 4),
        ("mobilenet_unet", 4),
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


def test_mobilenet_unet_joins_a_skip_at_each_stride_on_a_one_channel_stem():
    model = build_model("mobilenet_unet", settings("mobilenet_unet", decoder_width=8))
    assert model.encoder[0][0].in_channels == 1 and len(model.encoder) == 18
    seen = []
    for block in model.decoder:
        block.register_forward_hook(lambda module, inputs, output: seen.append((inputs[0].shape[1:], output.shape[1:])))
    with torch.no_grad():
        assert model(torch.randn(1, 1, 100, 70)).shape == (1, 1, 100, 70)
    # decoder inputs: the level below (scaled up) and the skip at that stride, padded to 128 x 96
    assert seen == [
        ((320 + 96, 8, 6), (128, 8, 6)),
        ((128 + 32, 16, 12), (64, 16, 12)),
        ((64 + 24, 32, 24), (32, 32, 24)),
        ((32 + 16, 64, 48), (16, 64, 48)),
        ((16, 128, 96), (8, 128, 96)),
    ]


def test_mobilenet_unet_loads_imagenet_style_weights_with_the_stem_folded_to_gray():
    torch.manual_seed(0)
    published = mobilenet_models().mobilenet_v2(weights=None).state_dict()
    model = MobileNetUNet(4).eval()
    model.load_encoder(published)
    encoder = model.encoder.state_dict()
    assert torch.equal(encoder["17.conv.2.weight"], published["features.17.conv.2.weight"])
    assert torch.equal(encoder["0.0.weight"], published["features.0.0.weight"].sum(dim=1, keepdim=True))
    rgb_stem = torch.nn.Conv2d(3, 32, 3, 2, 1, bias=False)
    rgb_stem.weight.data = published["features.0.0.weight"]
    gray = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.encoder[0][0](gray), rgb_stem(gray.repeat(1, 3, 1, 1)), atol=1e-5)


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


def test_windows_are_cut_and_pasted_at_each_images_own_corner():
    tensor = torch.arange(2 * 3 * 10 * 12, dtype=torch.float32).reshape(2, 3, 10, 12)
    top, left = torch.tensor([0, 4]), torch.tensor([8, 2])
    cut = windows(tensor, top, left, 4)
    assert torch.equal(cut[0], tensor[0, :, 0:4, 8:12]) and torch.equal(cut[1], tensor[1, :, 4:8, 2:6])
    pasted = tensor.clone()
    paste_windows(pasted, -cut, top, left)
    expected = tensor.clone()
    expected[0, :, 0:4, 8:12] *= -1
    expected[1, :, 4:8, 2:6] *= -1
    assert torch.equal(pasted, expected)


def test_refined_training_windows_sit_on_the_coarse_peak_and_on_whole_coarse_pixels():
    model = refined_unet(window=16)
    coarse_logits = torch.zeros(2, 1, 16, 16)
    coarse_logits[0, 0, 3, 5] = coarse_logits[1, 0, 15, 0] = 1.0
    tops, lefts = model._corners(coarse_logits, 16, 64, 64)
    # peak at coarse (3, 5) = pixels (12..15, 20..23): a 16-px window centred on (14, 22), snapped to 4 px
    assert (tops[0].tolist(), lefts[0].tolist()) == ([4, 48], [12, 0])
    assert all(value % 4 == 0 and 0 <= value <= 48 for value in tops[1].tolist() + lefts[1].tolist())


def test_refine_needs_a_downscaled_unet():
    with pytest.raises(ValueError, match="refine.width > 0 needs downscale > 1"):
        settings("unet", refine={"width": 4, "window": 16})


def test_unknown_model_name_is_refused():
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        build_model("resnet", settings("unet"))


def test_torchvision_segmentation_imports_in_a_fresh_interpreter():
    code = (
        "from defectseg.models.torchvision_compat import segmentation_models, _extension_loads\n"
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


def test_a_full_resolution_branch_feeds_the_decoders_last_level_from_the_pixels():
    torch.manual_seed(0)
    model = MobileNetUNet(4, full_resolution_width=6)
    images = torch.randn(2, 1, 40, 56, requires_grad=True)
    logits = model(images)
    assert logits.shape == (2, 1, 40, 56)
    assert model.decoder[-1][0].in_channels == 4 * 2 + 6, "the last level takes the level above and the branch"
    logits[:, :, 5, 5].sum().backward()
    assert model.full_resolution[0].weight.grad.abs().sum() > 0
    assert MobileNetUNet(4).full_resolution is None
