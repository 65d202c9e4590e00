"""End-to-end fault suite: the real stages through ``dvc repro`` on broken input.

Each case checks what a user sees: a non-zero exit, one ``error: <file>: <problem>``
line naming the file, no traceback, and nothing left in data/, models/ or metrics/
that DVC could cache.
"""

import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import DvcRepo, gray, make_plain, params_with, write_png
from defectseg.data.dataset import Normalization
from defectseg.measures.decision import Decision
from defectseg.models.factory import build_model
from defectseg.models.model_format import save_model
from defectseg.models.saved_model import save_decision

TINY = {
    "data.synthetic.count": 24,
    "data.synthetic.tile_size": 32,
    "preprocess.image_size": 32,
    "models.unet.base_width": 4,
    "models.unet.depth": 2,
    "train.batch_size": 4,
    "evaluate.worst_overlays": 1,
    "report.bootstrap_samples": 100,
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = DvcRepo(tmp_path_factory.mktemp("faults"))
    repo.set_params(**TINY)
    repo.commit("tiny")
    return repo


# The source stage's fingerprint of a readable source (whole, written before prepare checks the
# pairs), its definition and its lock: what data/ may hold after a failed prepare.
KEPT = {"data/source.json", "data/dvc.yaml", "data/dvc.lock"}


def leftovers(repo) -> list[str]:
    """Anything under data/, models/ or metrics/ (hidden temporaries included) but the source stage's files."""
    found = []
    for top in ("data", "models", "metrics"):
        folder = repo.root / top
        if folder.exists():
            found += [str(p.relative_to(repo.root)) for p in folder.rglob("*") if p.name != ".gitignore"]
    return [name for name in found if name not in KEPT]


def assert_fails_cleanly(repo, needle: str, *targets: str) -> str:
    result = repo.run("dvc", "repro", *(targets or ("prepare",)), check=False)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors and needle in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert leftovers(repo) == []
    return errors[0]


def broken_source(tmp_path, case: str):
    """A plain images/ + masks/ folder of four good pairs with one fault, and the file at fault."""
    source = make_plain(tmp_path / case)
    image, mask = source / "images" / "img1.png", source / "masks" / "img1.png"
    if case == "truncated_jpeg":
        image.unlink()
        image = source / "images" / "img1.jpg"
        Image.fromarray(gray(64, 64)).save(image, quality=95)
        image.write_bytes(image.read_bytes()[:400])
        mask = write_png(mask, np.zeros((64, 64), np.uint8))
        return source, image
    if case == "zero_byte_png":
        image.write_bytes(b"")
        return source, image
    if case == "mask_missing":
        mask.unlink()
        return source, image
    if case == "size_mismatch":
        write_png(mask, np.zeros((40, 48), np.uint8))
        return source, mask
    if case in ("RGB", "RGBA"):
        Image.new(case, (48, 48)).save(mask)
        return source, mask
    if case == "mask_16_bit":
        write_png(mask, np.full((48, 48), 300, np.uint16))
        return source, mask
    if case == "mask_only_255":
        write_png(mask, np.full((48, 48), 255, np.uint8))
        return source, mask
    if case == "image_too_small":
        write_png(image, gray(3, 3))
        write_png(mask, np.zeros((3, 3), np.uint8))
        return source, image
    if case == "duplicate_stems":
        duplicate = write_png(source / "images" / "img1.jpg", gray())
        return source, duplicate
    if case == "symlink_outside":
        image.unlink()
        image.symlink_to(write_png(tmp_path / f"{case}-outside.png", gray()))
        return source, image
    if case == "huge_image":
        Image.new("1", (20000, 20000)).save(image)
        Image.new("1", (20000, 20000)).save(mask)
        return source, image
    raise ValueError(case)


CASES = {
    "truncated_jpeg": "truncated or corrupt",
    "zero_byte_png": "not a readable image",
    "mask_missing": "mask missing",
    "size_mismatch": "mask is 48x40 but its image",
    "RGB": "mask must be 8-bit single-channel (mode L), got mode RGB",
    "RGBA": "mask must be 8-bit single-channel (mode L), got mode RGBA",
    "mask_16_bit": "got mode I;16",
    "mask_only_255": "mask marks every pixel as defect",
    "image_too_small": "image is 3x3, smaller than data.min_side",
    "duplicate_stems": "duplicate id 'img1'",
    "symlink_outside": "symbolic link points outside the source folder",
    "huge_image": "image is 20000x20000",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_file_fails_naming_it(repo, tmp_path, case):
    source, culprit = broken_source(tmp_path, case)
    repo.set_params(**{"data.source": str(source)})
    line = assert_fails_cleanly(repo, CASES[case])
    assert line.startswith(f"error: {culprit}") or str(culprit) in line


def test_huge_image_is_refused_without_exhausting_memory(repo, tmp_path):
    source, _ = broken_source(tmp_path, "huge_image")
    repo.set_params(**{"data.source": str(source)})
    result = subprocess.run(
        ["/usr/bin/time", "-f", "maxrss_kb=%M", "dvc", "repro", "prepare"], cwd=repo.root, capture_output=True, text=True,
        env={**os.environ, "PATH": f"{os.path.dirname(os.sys.executable)}:{os.environ['PATH']}"},
    )  # fmt: skip
    assert result.returncode != 0
    peak_kb = int(result.stderr.rsplit("maxrss_kb=", 1)[1].split()[0])
    assert peak_kb < 1_000_000, f"peak memory {peak_kb} kB while refusing a 400-megapixel image"


def test_non_image_files_are_skipped_and_counted(repo, tmp_path):
    source = make_plain(tmp_path / "with_notes", n=8)
    (source / "images" / "notes.txt").write_text("not an image")
    (source / "masks" / "Thumbs.db").write_bytes(b"\0\1")
    repo.set_params(**{"data.source": str(source)})
    result = repo.run("dvc", "repro", "prepare")
    assert "skipped 2 non-image files" in result.stdout
    assert '"skipped_non_image_files": 2' in (repo.root / "data" / "prepared" / "summary.json").read_text()
    repo.run("rm", "-rf", "data/prepared")


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        ("empty", "source folder is empty"),
        ("missing", "source path does not exist"),
        ("zip_dotdot", "would escape the target folder"),
        ("zip_absolute", "has an absolute path"),
        ("unknown_layout", "unknown layout"),
    ],
)
def test_bad_source_fails_naming_it(repo, tmp_path, setup, needle):
    if setup == "empty":
        source = tmp_path / "empty"
        source.mkdir()
    elif setup == "missing":
        source = tmp_path / "nowhere"
    elif setup == "unknown_layout":
        source = tmp_path / "odd"
        write_png(source / "pictures" / "a.png", gray())
    else:
        source = tmp_path / "data.zip"
        with zipfile.ZipFile(source, "w") as archive:
            archive.writestr("images/a.png", b"x")
            archive.writestr("../evil.png" if setup == "zip_dotdot" else "/tmp/evil.png", b"x")
    repo.set_params(**{"data.source": str(source)})
    line = assert_fails_cleanly(repo, needle)
    assert str(source) in line


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"train.colour": "red"}, "train.colour: unknown key"),
        ({"train.epochs": "ten"}, "train.epochs: Input should be a valid integer"),
        ({"train.epochs": -3}, "train.epochs: Input should be greater than 0"),
        ({"compare.losses": ["bce", "hinge"]}, "compare.losses.1: Input should be"),
        ({"compare.models": ["resnet9000"]}, "compare.models.0: Input should be"),
    ],
)
def test_bad_params_fail_naming_the_key(repo, overrides, needle):
    repo.set_params(**{"data.source": "synthetic", **overrides})
    line = assert_fails_cleanly(repo, needle)
    assert line.startswith("error: params.yaml: ")
    repo.run("git", "checkout", "params.yaml")


def test_data_too_small_for_the_split_is_refused_naming_the_counts(repo, tmp_path):
    repo.run("rm", "-rf", "data/prepared", "data/preprocessed", "data/source.json", "data/dvc.lock", "models", "metrics/runs")
    source = make_plain(tmp_path / "six", n=6)
    repo.set_params(**{"data.source": str(source)})
    line = assert_fails_cleanly(repo, "6 pairs split at train/val/test = 0.7/0.15/0.15 leave test empty")
    assert "(train 4, val 2, test 0)" in line and "data.split or compare.folds" in line
    repo.run("git", "checkout", "params.yaml")


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved") / "model"
    params = params_with(**{"models.unet.base_width": 4, "models.unet.depth": 2})
    save_model(folder, build_model("unet", params.models.unet).state_dict(), "unet", params.models.unet, Normalization(0.5, 0.2), {"input_size": [32, 32], "best_epoch": 1})
    save_decision(folder, Decision(0.5), "val", 0.0)
    return folder


def defectseg(*args) -> subprocess.CompletedProcess:
    command = [os.path.join(os.path.dirname(sys.executable), "defectseg"), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True)


@pytest.mark.parametrize(
    "command, out, needle",
    [
        ("predict", "a_file", "--out names an existing file"),
        ("predict", "a_file/masks", "this is a file, so no folder can be made under it"),
        ("export", "a_folder", "--out names an existing folder"),
        ("export", "a_file/model.onnx", "this is a file, so no folder can be made under it"),
    ],
)
def test_cli_output_path_of_the_wrong_kind_fails_in_one_line(saved_model, tmp_path, command, out, needle):
    (tmp_path / "a_file").write_text("keep me")
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "a_folder" / "inside.txt").write_text("keep me too")
    image = write_png(tmp_path / "in" / "tile.png", gray(40, 40))
    extra = [image] if command == "predict" else ["--format", "onnx"]
    result = defectseg(command, "--model", saved_model, "--out", tmp_path / out, *extra)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and needle in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert (tmp_path / "a_file").read_text() == "keep me"
    assert [p.name for p in (tmp_path / "a_folder").iterdir()] == ["inside.txt"]
