"""The shipped model through the registry: a real git repository with a local DVC remote, GTO's
tags, and ``dvc artifacts get`` / ``defectseg predict --repo`` from another folder."""

import re
import subprocess
import sys

import pytest
import requests

from conftest import DvcRepo, command_env, copy_of_tiny_reproduced, gray, running_server, write_png
from defectseg.deploy.registry import resolve
from defectseg.errors import DefectsegError

NAME = "defect-segmenter"


@pytest.fixture(scope="module")
def registry(tiny_reproduced, tmp_path_factory) -> DvcRepo:
    """The reproduced tiny pipeline with its default DVC remote (a local folder) committed and
    pushed, its shipped model registered as v1.0.0 and assigned to prod."""
    repo, _ = copy_of_tiny_reproduced(tiny_reproduced, tmp_path_factory.mktemp("registry") / "project")
    remote = tmp_path_factory.mktemp("remote")
    repo.run("dvc", "remote", "add", "--default", "storage", str(remote))
    repo.run("dvc", "push", "-q")
    repo.commit("the team's remote")
    repo.run("gto", "register", NAME, "--version", "v1.0.0")
    repo.run("gto", "assign", NAME, "--version", "v1.0.0", "--stage", "prod")
    return repo


def elsewhere(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """``defectseg ARGS`` run from a folder outside the repository, with its own artifact cache."""
    env = dict(command_env(), DEFECTSEG_CACHE=str(tmp_path / "cache"))
    return subprocess.run([sys.executable, "-m", "defectseg", *args], cwd=tmp_path, env=env, capture_output=True, text=True)


@pytest.fixture
def tiles(tmp_path):
    folder = tmp_path / "tiles"
    for seed in range(3):
        write_png(folder / f"tile{seed}.png", gray(64, 80, seed=seed))
    return folder


def test_dvc_fetches_the_registered_folder_from_another_folder(registry, tmp_path):
    subprocess.run(["dvc", "artifacts", "get", str(registry.root), NAME, "--rev", "v1.0.0", "-o", "got"], cwd=tmp_path, env=command_env(), check=True, capture_output=True)
    assert sorted(p.name for p in (tmp_path / "got").iterdir()) == ["README.md", "card.json", "model.json", "model.pt", "threshold.json"]
    assert (tmp_path / "got" / "model.pt").read_bytes() == (registry.root / "release" / "model.pt").read_bytes()


@pytest.mark.parametrize("reference", [f"{NAME}#prod", f"{NAME}@v1.0.0"])
def test_predict_by_name_draws_masks_at_each_images_size(registry, tiles, tmp_path, reference):
    result = elsewhere(tmp_path, "predict", "--repo", str(registry.root), "--artifact", reference, "--out", "masks", str(tiles))
    assert result.returncode == 0, result.stderr
    assert f"{NAME}@v1.0.0" in result.stderr
    masks = sorted((tmp_path / "masks").glob("tile*.png"))
    assert len(masks) == 3 and all(__import__("PIL.Image").Image.open(m).size == (80, 64) for m in masks)


def test_serve_by_name_reports_the_version_and_commit(registry):
    commit = registry.run("git", "rev-parse", "HEAD").stdout.strip()
    with running_server("--repo", str(registry.root), "--artifact", f"{NAME}#prod") as url:
        health = requests.get(f"{url}/health", timeout=10).json()
    assert (health["name"], health["version"], health["stage"], health["commit"]) == (NAME, "v1.0.0", "prod", commit)


def test_a_model_removed_from_prod_is_no_longer_served_as_prod(registry, tiles, tmp_path):
    copy = registry.copy_to(tmp_path / "unassigned")
    copy.run("gto", "deprecate", NAME, "v1.0.0", "prod")  # un-assigns the stage
    result = elsewhere(tmp_path, "predict", "--repo", str(copy.root), "--artifact", f"{NAME}#prod", "--out", "masks", str(tiles))
    assert result.returncode == 1 and not (tmp_path / "masks").exists()
    assert result.stderr.strip().splitlines()[-1] == f"error: {copy.root}: no version of {NAME} is in stage prod (gto show {NAME})"
    # DVC alone would still fetch it: its newest tag naming prod is the un-assignment
    fetched = subprocess.run(["dvc", "artifacts", "get", str(copy.root), NAME, "--stage", "prod", "-o", "dvc-got"], cwd=tmp_path, env=command_env(), capture_output=True, text=True)
    assert fetched.returncode == 0 and (tmp_path / "dvc-got" / "model.pt").exists()
    assert elsewhere(tmp_path, "predict", "--repo", str(copy.root), "--artifact", f"{NAME}@v1.0.0", "--out", "by-version", str(tiles)).returncode == 0


@pytest.mark.parametrize(("reference", "message"), [
    ("defect-segmenter", "--artifact defect-segmenter: expected NAME#STAGE (e.g. defect-segmenter#prod) or NAME@vX.Y.Z"),
    (f"{NAME}@v9.9.9", f"{NAME} has no registered version v9.9.9 (registered: v1.0.0)"),
    (f"{NAME}#staging", f"no version of {NAME} is in stage staging"),
])  # fmt: skip
def test_an_unknown_reference_is_one_clear_error(registry, reference, message):
    with pytest.raises(DefectsegError, match=re.escape(message)):
        resolve(str(registry.root), reference)
