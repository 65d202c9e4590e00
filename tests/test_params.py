"""params.yaml: documented, validated, and strict about unknown keys and types."""

import re

import pytest
import yaml

from conftest import REPO, default_params_dict, override
from defectseg.config.data import load_data_params
from defectseg.config.params import load_params, parse_params
from defectseg.errors import ParamsError


def test_repository_params_file_is_valid():
    load_params(REPO / "params.yaml")


def test_every_param_line_has_a_comment_above_it():
    lines = (REPO / "params.yaml").read_text().splitlines()
    for number, line in enumerate(lines):
        is_leaf = re.match(r"^\s*[a-z_]+:\s*\S", line) and not line.strip().startswith("#")
        if is_leaf:
            assert lines[number - 1].strip().startswith("#"), f"params.yaml line {number + 1} has no comment: {line!r}"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"data.colour": "red"}, "data.colour: unknown key"),
        ({"data.synthetic.count": "many"}, "data.synthetic.count"),
        ({"data.synthetic.count": 10.0}, "data.synthetic.count"),
        ({"data.split.train": 0.9}, "train + val + test must be 1"),
        ({"preprocess.mask_threshold": 300}, "preprocess.mask_threshold"),
        ({"preprocess.image_size": [64]}, "preprocess.image_size"),
        ({"data.mtd.sha256": "abc"}, "data.mtd.sha256"),
    ],
)
def test_invalid_params_name_the_key(overrides, message):
    with pytest.raises(ParamsError, match=re.escape(message)):
        parse_params(override(default_params_dict(), overrides))


def test_size_accepts_height_and_width():
    settings = {"preprocess.image_size": [96, 128], "train.augment.rotate90": 0.0}
    params = parse_params(override(default_params_dict(), settings))
    assert params.preprocess.height_width == (96, 128)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"preprocess.image_size": [96, 128]}, "params.yaml: train.augment.rotate90 needs square images"),
        (
            {"preprocess.image_size": 68},
            "params.yaml: preprocess.image_size (68, 68) and train.augment.crop_size must be divisible by "
            "models.unet.downscale * 2**depth = 8",
        ),
        ({"models.unet.downscale": 4, "models.unet.depth": 4, "train.augment.crop_size": 48}, "must be divisible by models.unet.downscale * 2**depth = 64"),
        (
            {"compare.models": ["fcn_resnet50"], "models.fcn_resnet50.downscale": 3},
            "preprocess.image_size (64, 64) and train.augment.crop_size must be divisible by models.fcn_resnet50.downscale = 3",
        ),
        ({"train.augment.crop_size": 256}, "params.yaml: train.augment.crop_size 256 is larger than preprocess.image_size"),
        ({"train.augment.crop_size": 36}, "train.augment.crop_size must be divisible by models.unet.downscale * 2**depth = 8"),
        ({"models.unet.refine.width": 8}, "models.unet: refine.width > 0 needs downscale > 1"),
        ({"train.augment.crop_defect_share": 1.5}, "train.augment.crop_defect_share: Input should be less than or equal to 1"),
        ({"train.epochs": -1}, "params.yaml: train.epochs: Input should be greater than 0 (got -1)"),
        ({"compare.models": ["resnet"]}, "compare.models.0: Input should be 'unet'"),
        ({"compare.models": ["unet", "unet"]}, "compare.models: lists a value twice"),
        ({"compare.folds": 3}, "compare.folds: Input should be a valid list"),
        ({"compare.folds": [1, 2]}, "compare.folds: must be 0..K-1 for K folds, e.g. [0, 1, 2] for 3 (got [1, 2])"),
        ({"models.resnet_unet.weights": "https://example.com/r18.pth"}, "models.resnet_unet: weights needs weights_sha256"),
        ({"models.resnet_unet.encoder": "resnet50"}, "models.resnet_unet.encoder: Input should be 'resnet18' or 'resnet34'"),
        ({"compare.losses": ["bce", "hinge"]}, "compare.losses.1: Input should be 'bce'"),
    ],
)
def test_cross_section_and_training_errors_read_as_one_line(overrides, message):
    with pytest.raises(ParamsError) as caught:
        parse_params(override(default_params_dict(), overrides))
    assert str(caught.value).startswith(message) or message in str(caught.value)
    assert "\n" not in str(caught.value) and "'data':" not in str(caught.value)


def test_a_models_own_recipe_lies_over_the_shared_train_section():
    params = parse_params(override(default_params_dict(), {"models.unet.train": {"epochs": 120, "lr": 0.001, "augment": {"hflip": 0.0}}}))
    unet, shared = params.train_for("unet"), params.train
    assert (unet.epochs, unet.lr, unet.augment.hflip) == (120, 0.001, 0.0)
    assert unet.batch_size == shared.batch_size and unet.augment.vflip == shared.augment.vflip and shared.epochs != 120
    assert params.train_for("mobilenet_unet") is shared


@pytest.mark.parametrize(
    "recipe, message",
    [
        ({"epoch": 3}, "models.unet.train (over the shared train section): epoch: unknown key"),
        ({"lr": -1.0}, "models.unet.train (over the shared train section): lr: Input should be greater than 0"),
        ({"schedule": "onecycle"}, "models.unet.train (over the shared train section): warmup_epochs is the onecycle schedule's warm-up"),
    ],
)
def test_a_bad_model_recipe_names_the_model_and_the_key(recipe, message):
    with pytest.raises(ParamsError) as caught:
        parse_params(override(default_params_dict(), {"models.unet.train": recipe}))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_an_unused_models_section_is_still_checked_but_not_sized():
    params = parse_params(override(default_params_dict(), {"models.fcn_resnet50.downscale": 3}))
    assert params.compare.models == ["unet"] and params.models.fcn_resnet50.downscale == 3


def test_fold_count_is_the_length_of_compare_folds():
    assert parse_params(override(default_params_dict(), {"compare.folds": [0, 1, 2]})).compare.fold_count == 3


def test_missing_params_file_is_a_clear_error(tmp_path):
    with pytest.raises(ParamsError, match="file not found"):
        load_params(tmp_path / "params.yaml")


def test_the_source_stage_checks_the_data_section_as_strictly(tmp_path):
    raw = default_params_dict()
    raw["data"]["source"] = 3
    raw["data"]["extra"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match=r"params.yaml: data.source: Input should be a valid string \(got 3\); data.extra: unknown key"):
        load_data_params(tmp_path / "params.yaml")
