"""`make mtd`'s mechanism: a named DVC experiment whose models stay in the DVC cache."""

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from conftest import TINY_PIPELINE, DvcRepo, gray, write_png
from defectseg.errors import DefectsegError
from defectseg.experiments import experiment_ref, files_in, read_file, run_experiment, set_flags
from defectseg.predict import predict


def test_overrides_become_set_flags_dvc_reads_back():
    flags = set_flags({"train.lr": 0.001, "compare.losses": ["bce", "dice"], "data.source": "/a b/c", "models.unet.train": {"epochs": 2, "schedule": "cosine"}})
    assert flags == [
        "-S", "++train.lr=0.001", "-S", '++compare.losses=["bce", "dice"]', "-S", '++data.source="/a b/c"',
        "-S", '++models.unet.train={epochs: 2, schedule: "cosine"}',
    ]  # fmt: skip


@pytest.fixture
def tiny_repo(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    (tmp_path / "project").mkdir()
    repo = DvcRepo(tmp_path / "project")
    repo.set_params(**TINY_PIPELINE)
    repo.commit("tiny pipeline")
    return repo


def test_named_experiment_is_listed_and_its_models_can_be_applied_and_used(tiny_repo, tmp_path):
    ref = run_experiment("tiny-bce", {"compare.losses": ["bce"], "train.epochs": 1, "models.unet.train": {"epochs": 2}}, tiny_repo.root)
    assert ref.endswith("/tiny-bce")
    assert yaml.safe_load(read_file(ref, "params.yaml", tiny_repo.root))["models"]["unet"]["train"] == {"epochs": 2}, "a model's own recipe reaches the experiment"
    shown = tiny_repo.run("dvc", "exp", "show", "--csv").stdout
    assert "tiny-bce" in shown
    assert list(json.loads(read_file(ref, "metrics/headline.json", tiny_repo.root))) == ["unet-bce"]
    assert "reports/figures/pr_curves.png" in files_in(ref, "reports/figures", tiny_repo.root)
    assert not (tiny_repo.root / "models" / "unet-bce-seed0-fold0" / "model.pt").exists(), "--temp leaves the workspace alone"
    tiny_repo.run("dvc", "exp", "apply", "tiny-bce")
    model = tiny_repo.root / "models" / "unet-bce-seed0-fold0"
    assert (model / "threshold.json").is_file()
    image = write_png(tmp_path / "new" / "tile.png", gray(40, 40))
    outcome = predict(model, [image], tmp_path / "masks", None, 2, False, "cpu")
    assert len(outcome.rows) == 1 and (tmp_path / "masks" / "tile.png").is_file()


def test_unknown_experiment_name_is_a_clear_error(tiny_repo):
    with pytest.raises(DefectsegError, match="no-such-run"):
        experiment_ref("no-such-run", tiny_repo.root)
