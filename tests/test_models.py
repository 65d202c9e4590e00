"""Each model builds from scratch, maps (N, 1, H, W) to logits of the same size, and trains."""

import subprocess
import sys

import pytest
import torch

from defectseg.models import Refined, build_model
from defectseg.params import RefineParams, UnetParams


@pytest.mark.parametrize(
    ("name", "downscale"),
    [("unet", 1), ("deeplabv3_resnet50", 1), ("fcn_resnet50", 1), ("lraspp_mobilenet_v3_large", 1), ("unet", 4), ("lraspp_mobilenet_v3_large", 4)],
)
def test_model_returns_logits_at_input_size_and_trains(name, downscale):
    torch.manual_seed(0)
    model = build_model(name, UnetParams(base_width=4, depth=2 if downscale > 1 else 3), downscale)
    images = torch.randn(2, 1, 64, 48)
    logits = model(images)
    assert logits.shape == (2, 1, 64, 48)
    logits.mean().backward()
    assert sum(float(p.grad.abs().sum()) for p in model.parameters() if p.grad is not None) > 0


def test_unet_widths_follow_base_width_and_depth():
    model = build_model("unet", UnetParams(base_width=8, depth=3))
    assert [block[0].out_channels for block in model.down] == [8, 16, 32, 64]


def test_downscaled_unet_sees_the_area_averaged_image():
    model = build_model("unet", UnetParams(base_width=4, depth=2), downscale=2).eval()
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
    return build_model("unet", UnetParams(base_width=4, depth=2), downscale=4, refine=RefineParams(width=4, window=window))


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
    with pytest.raises(ValueError, match="train.refine needs train.model unet and train.downscale > 1"):
        build_model("unet", UnetParams(base_width=4, depth=2), downscale=1, refine=RefineParams(width=4, window=16))


def test_unknown_model_name_is_refused():
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        build_model("resnet", UnetParams(base_width=4, depth=2))


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
