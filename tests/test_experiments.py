"""`defectseg compare` (behind `make mtd*`): a named DVC experiment whose models stay in the DVC cache, its report in reports/NAME."""

import json
import os
import re
import sys
from pathlib import Path

import pytest
import yaml

from conftest import TINY_PIPELINE, DvcRepo, gray, write_png
from defectseg.cli.experiments import experiment_ref, files_in, read_file, set_flags
from defectseg.errors import DefectsegError
from defectseg.evaluation.predict import predict


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


def test_a_named_comparison_is_an_experiment_with_its_report_provenance_and_usable_models(tiny_repo, tmp_path):
    first, second = tmp_path / "tiny.yaml", tmp_path / "recipe.yaml"
    first.write_text(yaml.safe_dump({"compare.losses": ["bce"], "train.epochs": 1}))
    second.write_text(yaml.safe_dump({"models.unet.train": {"epochs": 2}}))
    result = tiny_repo.run("defectseg", "compare", "--config", str(first), "--config", str(second), "--name", "tiny-bce")
    lines = result.stdout.splitlines()
    assert any(line.startswith("tiny-bce: ") for line in lines) and any(" of 1 runs converged" in line for line in lines)
    ref = experiment_ref("tiny-bce", tiny_repo.root)
    assert yaml.safe_load(read_file(ref, "params.yaml", tiny_repo.root))["models"]["unet"]["train"] == {"epochs": 2}, "the later config layers over the first"
    assert "tiny-bce" in tiny_repo.run("dvc", "exp", "show", "--csv").stdout
    assert list(json.loads(read_file(ref, "metrics/headline.json", tiny_repo.root))) == ["unet-bce"]
    assert "reports/figures/pr_curves.png" in files_in(ref, "reports/figures", tiny_repo.root)
    folder = tiny_repo.root / "reports" / "tiny-bce"
    assert (folder / "report.md").read_bytes() == read_file(ref, "reports/report.md", tiny_repo.root)
    assert (folder / "figures" / "pr_curves.png").is_file() and (folder / "comparison.json").is_file()
    record = json.loads((folder / "provenance.json").read_text())
    commit = tiny_repo.run("git", "rev-parse", "HEAD").stdout.strip()
    assert (record["experiment"], record["commit"], record["configs"]) == ("tiny-bce", commit, [str(first), str(second)])
    assert "src/defectseg/training/losses.py" in record["code"]
    assert not (tiny_repo.root / "models" / "unet-bce-seed0-fold0" / "model.pt").exists(), "--temp leaves the workspace alone"

    remade = tiny_repo.run("defectseg", "compare", "--config", str(first), "--config", str(second), "--remake", "tiny-bce")
    assert not re.findall(r"Running stage '(?:train|evaluate)@", remade.stdout), "a re-make trains and evaluates nothing"
    again = json.loads((folder / "provenance.json").read_text())
    assert again["experiment"].startswith("tiny-bce-remade-") and again["measured"]["experiment"] == "tiny-bce"
    assert (folder / "report.md").read_bytes() == read_file(ref, "reports/report.md", tiny_repo.root)

    tiny_repo.run("dvc", "exp", "apply", "tiny-bce")
    model = tiny_repo.root / "models" / "unet-bce-seed0-fold0"
    assert (model / "threshold.json").is_file()
    image = write_png(tmp_path / "new" / "tile.png", gray(40, 40))
    outcome = predict(model, [image], tmp_path / "masks", None, 2, False, "cpu")
    assert len(outcome.rows) == 1 and (tmp_path / "masks" / "tile.png").is_file()


def test_a_failed_experiment_ends_in_one_line_naming_it(tiny_repo, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"compare.losses": ["bce"]}))
    result = tiny_repo.run("defectseg", "compare", "--config", str(config), "--data", str(tmp_path / "no-such-data"), "--name", "broken", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: broken: `dvc exp run` failed (exit "), result.stderr
    assert not (tiny_repo.root / "reports" / "broken").exists()


def test_a_config_that_is_no_mapping_is_named(tiny_repo, tmp_path):
    config = tmp_path / "list.yaml"
    config.write_text("- compare.losses\n")
    result = tiny_repo.run("defectseg", "compare", "--config", str(config), "--name", "x", check=False)
    assert result.returncode == 1 and result.stderr.strip() == f"error: {config}: expected a mapping of dotted params keys to values"


def test_a_remake_of_a_report_compare_never_wrote_is_named(tiny_repo, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"compare.losses": ["bce"]}))
    result = tiny_repo.run("defectseg", "compare", "--config", str(config), "--remake", "nothing-here", check=False)
    assert result.returncode == 1 and "reports/nothing-here/provenance.json: not found: --remake re-makes a report compare wrote" in result.stderr


def test_unknown_experiment_name_is_a_clear_error(tiny_repo):
    with pytest.raises(DefectsegError, match="no-such-run"):
        experiment_ref("no-such-run", tiny_repo.root)
