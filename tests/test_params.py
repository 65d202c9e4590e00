"""params.yaml: documented, validated, and strict about unknown keys and types."""

import re

import pytest

from conftest import REPO, default_params_dict, override
from defectseg.errors import ParamsError
from defectseg.params import load_params, parse_params


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
            {"preprocess.image_size": 72},
            "params.yaml: preprocess.image_size (72, 72) and train.augment.crop_size must be divisible by "
            "train.downscale * 2**train.unet.depth = 1 * 16 = 16",
        ),
        ({"models.unet.downscale": 4, "train.augment.crop_size": 96}, "must be divisible by train.downscale * 2**train.unet.depth = 4 * 16 = 64"),
        ({"train.model": "fcn_resnet50", "models.unet.downscale": 3}, "preprocess.image_size (128, 128) and train.augment.crop_size must be divisible by train.downscale = 3"),
        ({"train.augment.crop_size": 256}, "params.yaml: train.augment.crop_size 256 is larger than preprocess.image_size"),
        ({"train.augment.crop_size": 40}, "train.augment.crop_size must be divisible by train.downscale * 2**train.unet.depth = 1 * 16 = 16"),
        ({"models.unet.refine.width": 8}, "train.refine.width > 0 needs train.model unet and train.downscale > 1"),
        ({"models.unet.refine.width": 8, "models.unet.downscale": 2, "train.model": "fcn_resnet50"}, "train.refine.width > 0 needs train.model unet"),
        ({"train.augment.crop_defect_share": 1.5}, "train.augment.crop_defect_share: Input should be less than or equal to 1"),
        ({"train.epochs": -1}, "params.yaml: train.epochs: Input should be greater than 0 (got -1)"),
        ({"train.model": "resnet"}, "train.model: Input should be 'unet'"),
        ({"compare.losses": ["bce", "hinge"]}, "compare.losses.1: Input should be 'bce'"),
    ],
)
def test_cross_section_and_training_errors_read_as_one_line(overrides, message):
    with pytest.raises(ParamsError) as caught:
        parse_params(override(default_params_dict(), overrides))
    assert str(caught.value).startswith(message) or message in str(caught.value)
    assert "\n" not in str(caught.value) and "'data':" not in str(caught.value)


def test_missing_params_file_is_a_clear_error(tmp_path):
    with pytest.raises(ParamsError, match="file not found"):
        load_params(tmp_path / "params.yaml")
