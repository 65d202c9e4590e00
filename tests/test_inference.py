"""The inference module: device errors name the caller's key; maps go back to each image's size."""

import numpy as np
import pytest
import torch

from defectseg.errors import DefectsegError
from defectseg.models.compute import pick_device
from defectseg.models.inference import at_size


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("key", ["train.device", "evaluate.device", "--device"])
def test_unavailable_device_is_reported_against_the_callers_key(key):
    with pytest.raises(DefectsegError, match=f"^{key} is cuda but no CUDA device is available$"):
        pick_device("cuda", key)


def test_cpu_is_always_available():
    assert pick_device("cpu", "train.device") == torch.device("cpu")


def test_probability_map_is_resized_to_the_original_size():
    probability = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    resized = at_size(probability, 10, 6)
    assert resized.shape == (10, 6) and resized.dtype == np.float32
    assert 0 <= resized.min() and resized.max() <= 1
    assert at_size(probability, 4, 4) is probability


def test_flip_tta_averages_the_image_and_its_mirror_images(tmp_path):
    from conftest import params_with

    from defectseg.data.dataset import Normalization
    from defectseg.models.factory import build_model
    from defectseg.models.inference import Compute, predict_outputs
    from defectseg.models.model_format import save_model
    from defectseg.models.saved_model import load_model

    torch.manual_seed(0)
    params = params_with(**{"models.unet.base_width": 4, "models.unet.depth": 2})
    save_model(tmp_path, build_model("unet", params.models.unet).state_dict(), "unet", params.models.unet, Normalization(0.5, 0.2), {"input_size": [16, 16]})
    saved = load_model(tmp_path)
    images = np.random.default_rng(0).integers(0, 256, (3, 16, 16), dtype=np.uint8)
    compute = Compute(torch.device("cpu"))
    plain = predict_outputs(saved, images, 2, compute)[0]
    mirrored = [predict_outputs(saved, np.ascontiguousarray(images[:, ::-1, :]), 2, compute)[0][:, ::-1, :],
                predict_outputs(saved, np.ascontiguousarray(images[:, :, ::-1]), 2, compute)[0][:, :, ::-1]]  # fmt: skip
    averaged = predict_outputs(saved, images, 2, compute, flips=True)[0]
    assert np.allclose(averaged, (plain + mirrored[0] + mirrored[1]) / 3, atol=1e-6)
    assert not np.allclose(averaged, plain, atol=1e-3)
