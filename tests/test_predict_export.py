"""``defectseg predict`` and ``export`` on a tiny trained model and synthetic images."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from dvclive import Live
from PIL import Image
from test_training import tiny_params, tiny_split

from conftest import write_png
from defectseg.cli.commands import main
from defectseg.data.synthetic import make_tile
from defectseg.evaluation.export import deployable, export_model
from defectseg.evaluation.predict import save_prediction
from defectseg.measures.decision import Decision
from defectseg.models.model_format import save_model
from defectseg.models.saved_model import save_decision
from defectseg.training.loop import fit
from defectseg.training.losses import build_loss
from defectseg.training.run_spec import RunSpec


def _trained_model(root: Path, **overrides) -> Path:
    params = tiny_params(**{"train.epochs": 2, **overrides})
    spec = RunSpec(params.train, "unet", params.models.unet, "dicebce", {}, 0, "data")
    with Live(dir=str(root / "live"), dvcyaml=None, save_dvc_exp=False) as live:
        result = fit(spec, build_loss("dicebce", params.losses), tiny_split(12, 0), tiny_split(4, 50), root / "last.pt", live)
    folder = root / "model"
    save_model(folder, result["best"]["weights"], "unet", params.models.unet, result["normalization"], {"input_size": [32, 32], "best_epoch": 2})
    save_decision(folder, Decision(0.5), "val", 0.0)
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return _trained_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def downscaled_model_dir(tmp_path_factory) -> Path:
    return _trained_model(tmp_path_factory.mktemp("downscaled"), **{"models.unet.downscale": 2})


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "in"
    write_png(folder / "gray8.png", make_tile(5, 0, 64, 0.0).image[:50, :])
    write_png(folder / "gray16.png", make_tile(5, 1, 40, 0.0).image.astype(np.uint16) * 257)
    Image.fromarray(make_tile(5, 2, 48, 0.0).image).convert("RGB").save(folder / "colour.jpg")
    return folder


def run_cli(*args) -> int:
    with pytest.raises(SystemExit) as stopped:
        main([str(a) for a in args])
        raise SystemExit(0)
    return stopped.value.code


def test_predict_writes_masks_at_original_size_overlays_and_csv(model_dir, images, tmp_path):
    assert run_cli("predict", "--model", model_dir, "--out", tmp_path / "out", "--overlay", images) == 0
    table = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert sorted(table["mask"]) == ["colour.png", "gray16.png", "gray8.png"]
    for stem, size in [("gray8", (64, 50)), ("gray16", (40, 40)), ("colour", (48, 48))]:
        mask = Image.open(tmp_path / "out" / f"{stem}.png")
        assert mask.size == size and mask.mode == "L"
        assert set(np.unique(np.asarray(mask))) <= {0, 255}
        assert Image.open(tmp_path / "out" / f"{stem}_overlay.png").size == size
        row = table[table["mask"] == f"{stem}.png"].iloc[0]
        assert row["defect_pixels"] == (np.asarray(mask) > 0).sum()
        assert row["has_defect"] == (row["defect_pixels"] > 0)


def test_threshold_comes_from_evaluate_unless_given(model_dir, images, tmp_path):
    run_cli("predict", "--model", model_dir, "--out", tmp_path / "default", images)
    run_cli("predict", "--model", model_dir, "--threshold", "0.5", "--out", tmp_path / "given", images)
    run_cli("predict", "--model", model_dir, "--threshold", "0.01", "--out", tmp_path / "low", images)
    default, given, low = (pd.read_csv(tmp_path / n / "predictions.csv")["defect_pixels"].sum() for n in ("default", "given", "low"))
    assert default == given and low > given


def test_model_without_threshold_needs_one(model_dir, images, tmp_path, capsys):
    bare = tmp_path / "bare"
    shutil.copytree(model_dir, bare)
    (bare / "threshold.json").unlink()
    assert run_cli("predict", "--model", bare, "--out", tmp_path / "out", images) == 1
    assert "no threshold.json beside the model" in capsys.readouterr().err


def test_unreadable_image_is_listed_and_the_rest_processed(model_dir, images, tmp_path, capsys):
    (images / "broken.png").write_bytes(b"\x89PNG not really")
    assert run_cli("predict", "--model", model_dir, "--out", tmp_path / "out", images) == 1
    err = capsys.readouterr().err
    assert "1 failed" in err and "broken.png: not a readable image" in err
    assert len(pd.read_csv(tmp_path / "out" / "predictions.csv")) == 3


def test_folder_without_images_is_an_error(model_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert run_cli("predict", "--model", model_dir, "--out", tmp_path / "out", tmp_path / "empty") == 1
    err = capsys.readouterr().err
    assert "no images to predict" in err and "empty: folder holds no image files" in err


def test_foreign_or_pickled_model_files_are_refused(model_dir, images, tmp_path, capsys):
    foreign = tmp_path / "foreign"
    shutil.copytree(model_dir, foreign)
    (foreign / "model.pt").write_bytes(b"definitely not a checkpoint")
    assert run_cli("predict", "--model", foreign, "--out", tmp_path / "out", images) == 1
    assert "model.pt: not a readable checkpoint" in capsys.readouterr().err
    torch.save({"format": "defectseg-model-1", "weights": Image.new("L", (1, 1))}, foreign / "model.pt")
    assert run_cli("predict", "--model", foreign, "--out", tmp_path / "out", images) == 1
    assert "refused: holds pickled objects" in capsys.readouterr().err
    assert run_cli("predict", "--model", tmp_path / "images-not-a-model", "--out", tmp_path / "out", images) == 1


def test_predict_drops_regions_under_the_saved_share_at_the_original_size(tmp_path):
    probability = np.zeros((32, 32), dtype=np.float32)
    probability[2, 2] = 0.9
    probability[16:24, 16:24] = 0.9
    original = np.zeros((64, 64), dtype=np.uint8)
    row = save_prediction(tmp_path / "in" / "tile.png", original, probability, None, Decision(0.5, min_region_share=0.01), tmp_path, overlay=False)
    mask = np.array(Image.open(tmp_path / "tile.png")) > 0
    assert mask.shape == (64, 64)
    assert not mask[:12, :12].any()
    assert mask[36:44, 36:44].all()
    assert row["defect_pixels"] == int(mask.sum())


def test_downscaled_model_predicts_masks_at_original_size(downscaled_model_dir, images, tmp_path):
    assert run_cli("predict", "--model", downscaled_model_dir, "--out", tmp_path / "out", images) == 0
    assert Image.open(tmp_path / "out" / "gray8.png").size == (64, 50)


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
@pytest.mark.parametrize("model", ["model_dir", "downscaled_model_dir"])
def test_export_matches_the_pytorch_model(model, request, tmp_path, fmt):
    model_dir = request.getfixturevalue(model)
    out = export_model(model_dir, fmt, tmp_path / f"model.{fmt}")
    module, example = deployable(model_dir)
    batch = torch.cat([example, example[:1] * 0.5])
    with torch.no_grad():
        expected = module(batch).numpy()
    if fmt == "torchscript":
        got = torch.jit.load(str(out))(batch).detach().numpy()
    else:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(out))
        got = session.run(None, {"pixels": batch.numpy()})[0]
    assert got.shape == expected.shape == (3, 1, 32, 32)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_console_script_is_installed(model_dir, images, tmp_path):
    script = Path(sys.executable).parent / "defectseg"
    result = subprocess.run([script, "predict", "--model", model_dir, "--out", tmp_path / "out", images], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "3 images predicted" in result.stdout


def test_python_dash_m_runs_predict_and_export_like_the_console_script(model_dir, images, tmp_path):
    predicted = subprocess.run([sys.executable, "-m", "defectseg", "predict", "--model", model_dir, "--out", tmp_path / "out", images], capture_output=True, text=True)
    assert predicted.returncode == 0, predicted.stderr
    assert "3 images predicted" in predicted.stdout and (tmp_path / "out" / "predictions.csv").is_file()
    exported = subprocess.run([sys.executable, "-m", "defectseg", "export", "--model", model_dir, "--format", "torchscript", "--out", tmp_path / "m.pt"], capture_output=True, text=True)
    assert exported.returncode == 0 and (tmp_path / "m.pt").is_file(), exported.stderr


def test_python_dash_m_help_shows_each_command_with_an_example():
    result = subprocess.run([sys.executable, "-m", "defectseg", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("usage: defectseg")
    for command in ("predict", "export"):
        assert f"    {command} " in result.stdout, f"{command} is listed"
        assert f"  defectseg {command} --model " in result.stdout, f"{command} has an example"
