"""The inference module: device errors name the caller's key; maps go back to each image's size."""

import numpy as np
import pytest
import torch

from defectseg.errors import DefectsegError
from defectseg.inference import at_size, pick_device


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
