"""A saved model folder names its architecture by model name and settings section; older folders still load."""

import json

import pytest
import torch
from conftest import params_with

from defectseg.data.dataset import Normalization
from defectseg.errors import DataError
from defectseg.models.factory import build_model
from defectseg.models.model_format import save_model
from defectseg.models.saved_model import load_model


def saved_unet(folder, **overrides):
    params = params_with(**{"models.unet.base_width": 4, "models.unet.depth": 2, **overrides})
    torch.manual_seed(0)
    model = build_model("unet", params.models.unet)
    save_model(folder, model.state_dict(), "unet", params.models.unet, Normalization(0.5, 0.2), {"input_size": [32, 32], "best_epoch": 1})
    return model


def test_metadata_names_the_model_and_its_settings(tmp_path):
    saved_unet(tmp_path, **{"models.unet.downscale": 2})
    architecture = json.loads((tmp_path / "model.json").read_text())["architecture"]
    assert architecture == {"model": "unet", "settings": {"downscale": 2, "base_width": 4, "depth": 2, "refine": {"width": 0, "window": 64}}}


def test_a_model_saved_before_the_models_sections_still_loads(tmp_path):
    model = saved_unet(tmp_path, **{"models.unet.downscale": 2})
    metadata = json.loads((tmp_path / "model.json").read_text())
    metadata["architecture"] = {"model": "unet", "unet": {"base_width": 4, "depth": 2}, "downscale": 2}
    (tmp_path / "model.json").write_text(json.dumps(metadata))
    loaded = load_model(tmp_path)
    image = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model(image), model.eval()(image))


def test_unknown_model_settings_are_a_clear_error(tmp_path):
    saved_unet(tmp_path)
    metadata = json.loads((tmp_path / "model.json").read_text())
    metadata["architecture"]["settings"]["colour"] = "red"
    (tmp_path / "model.json").write_text(json.dumps(metadata))
    with pytest.raises(DataError, match=r"model.json: architecture is not usable"):
        load_model(tmp_path)
