"""configs/mtd.yaml: it validates against params.yaml, trains on the real Magnetic Tile copy,
and `defectseg predict` reproduces evaluate's native-size masks of the test images."""

from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import MTD, REPO, default_params_dict
from defectseg.config.params import apply_overrides, parse_params
from defectseg.config.runs import Run
from defectseg.data.images import read_mask
from defectseg.data.manifest import read_manifest
from defectseg.data.prepare import prepare_dataset
from defectseg.data.preprocess import preprocess
from defectseg.evaluation.evaluate import evaluate_run
from defectseg.evaluation.predict import predict
from defectseg.measures.metrics import Counts
from defectseg.models.saved_model import load_model
from defectseg.training.train_run import train_run

CONFIG = REPO / "configs" / "mtd.yaml"


def mtd_params(**extra):
    overrides = {**yaml.safe_load(CONFIG.read_text()), **extra}
    return parse_params(apply_overrides(default_params_dict(), overrides), str(CONFIG))


def test_mtd_config_sets_only_known_keys_to_valid_values():
    params = mtd_params()
    assert params.preprocess.height_width == (224, 224) and params.compare.models == ["efficientnet_unet"]
    assert params.models.efficientnet_unet.variant == "lite1" and params.train_for("efficientnet_unet").epochs == 29
    assert params.models.mobilenet_unet.weights.startswith("https://download.pytorch.org/models/mobilenet_v2-")
    assert params.models.unet.downscale == 4 and params.models.unet.refine.width > 0
    assert params.train_for("unet").epochs == 120 and params.train_for("mobilenet_unet") == params.train


def layered(*names: str):
    extra = {}
    for name in names:
        extra.update(yaml.safe_load((REPO / "configs" / name).read_text()))
    return mtd_params(**extra)


@pytest.mark.parametrize(
    ("layers", "models", "losses"),
    [
        (["mtd-cv-losses.yaml"], ["efficientnet_unet"], ["dicebce", "lovasz"]),
        (["mtd-cv-losses.yaml", "mtd-models.yaml"], ["mobilenet_unet", "efficientnet_unet"], ["dicebce"]),
        (["mtd-cv-losses.yaml", "mtd-cv-bce.yaml"], ["efficientnet_unet"], ["bce", "dicebce"]),
    ],
)
def test_cross_validated_mtd_configs_keep_the_single_splits_schedule(layers, models, losses):
    params = layered(*layers)
    assert params.compare.models == models and params.compare.losses == losses and params.compare.folds == [0, 1, 2]
    assert params.train == mtd_params().train and params.models == mtd_params().models
    assert params.evaluate == mtd_params().evaluate


def assert_only_train_differs(chosen, lever):
    assert lever.compare == chosen.compare and lever.models == chosen.models and lever.evaluate == chosen.evaluate


def test_exposure_lever_widens_only_the_photometric_augmentation():
    chosen, lever = layered("mtd-cv.yaml"), layered("mtd-cv.yaml", "mtd-cv-exposure.yaml")
    widened = {"brightness_contrast": 0.9, "brightness_contrast_limit": 0.4}
    assert all(getattr(chosen.train.augment, key) < value for key, value in widened.items())
    assert lever.train == chosen.train.model_copy(update={"augment": chosen.train.augment.model_copy(update=widened)})
    assert_only_train_differs(chosen, lever)


def test_no_copy_paste_recheck_turns_off_only_the_pastes():
    chosen, recheck = layered("mtd-cv.yaml"), layered("mtd-cv.yaml", "mtd-cv-no-copy-paste.yaml")
    assert chosen.train.copy_paste.shares
    assert recheck.train == chosen.train.model_copy(update={"copy_paste": chosen.train.copy_paste.model_copy(update={"shares": {}})})
    assert_only_train_differs(chosen, recheck)


@pytest.mark.parametrize("layers", [["mtd-gpu.yaml"], ["mtd-gpu.yaml", "mtd-gpu-models.yaml"]])
def test_gpu_configs_validate_and_run_on_cuda(layers):
    params = layered(*layers)
    assert params.train.device == params.evaluate.device == "cuda" and params.preprocess.height_width == (448, 448)
    assert "unet" in params.compare.models or len(layers) == 1


@pytest.mark.skipif(not MTD.is_dir(), reason="Magnetic Tile copy not at ../shared/datasets/magnetic-tile")
def test_mtd_config_trains_and_predict_reproduces_the_evaluated_test_masks(tmp_path: Path):
    # the configuration's model on every 12th image of each split for one epoch, its ImageNet
    # weights left out (a test must not download them): what is checked is that predict and
    # evaluate agree, not what the model learned
    params = mtd_params(**{"data.source": str(MTD), "train.epochs": 1, "train.schedule": "cosine", "train.warmup_epochs": 0,
                           "train.device": "cpu", "evaluate.device": "cpu", "models.mobilenet_unet.weights": ""})  # fmt: skip
    prepare_dataset(params.data, 1, tmp_path / "prepared", tmp_path / "cache")
    manifest = pd.read_csv(tmp_path / "prepared" / "manifest.csv", dtype={"id": str})
    few = tmp_path / "prepared" / "few.csv"
    pd.concat(rows.sort_values(["defect_class", "id"]).iloc[::12] for _, rows in manifest.groupby("fold0")).to_csv(few, index=False)
    preprocess(few, params.preprocess, tmp_path / "few")
    summary = train_run(params, Run("mobilenet_unet", "dicebce", 0, 0), tmp_path / "few", few, tmp_path / "model", tmp_path / "live", tmp_path / "scratch")
    assert summary["epochs"] == 1 and 0 <= summary["best_val_iou"] <= 1
    saved = load_model(tmp_path / "model")
    assert saved.metadata["input_size"] == [224, 224]
    assert saved.metadata["architecture"]["model"] == "mobilenet_unet"
    evaluate_run(tmp_path / "model", tmp_path / "few", few, 0, params.preprocess.mask_threshold, params.evaluate, tmp_path / "m.json", tmp_path / "ev")
    counted = pd.read_csv(tmp_path / "ev" / "per_image.csv", dtype={"id": str})
    rows = read_manifest(few).loc[counted["id"]]
    assert len(rows) >= 10 and rows["width"].nunique() > 1, "test images of several native sizes"
    predict(tmp_path / "model", [Path(p) for p in rows["image"]], tmp_path / "masks", None, 16, False, "cpu")
    predicted = [read_mask(tmp_path / "masks" / f"{Path(p).stem}.png") > 0 for p in rows["image"]]
    truth = [read_mask(Path(p)) > params.preprocess.mask_threshold for p in rows["mask"]]
    counts = Counts.of(predicted, truth)
    assert counts.tp.tolist() == counted["tp"].tolist()
    assert counts.fp.tolist() == counted["fp"].tolist() and counts.fn.tolist() == counted["fn"].tolist()
