"""A 2-model x 2-fold comparison through ``dvc repro`` in a real git + DVC repository."""

import csv
import json
import re
import shlex

import pandas as pd
import pytest

from conftest import REPO, TINY_PIPELINE, DvcRepo, changed, ran

MATRIX = {
    "compare.models": ["unet", "resnet_unet"],
    "compare.losses": ["bce"],
    "compare.folds": [0, 1],
    "models.resnet_unet.decoder_width": 4,
    "train.epochs": 1,
}
ARMS = {"unet-bce", "resnet_unet-bce"}


def branches(model: str) -> set[str]:
    return {f"{stage}@{model}-bce-0-{fold}" for stage in ("train", "evaluate") for fold in (0, 1)}


@pytest.fixture(scope="module")
def crossval(tmp_path_factory):
    repo = DvcRepo(tmp_path_factory.mktemp("crossval"))
    repo.set_params(**{**TINY_PIPELINE, **MATRIX})
    repo.commit("2 x 2 pipeline")
    first = repo.run("dvc", "repro")
    repo.commit("reproduced")
    return repo, first


def test_every_branch_of_the_matrix_runs_once(crossval):
    _, first = crossval
    assert ran(first) == {"prepare", "preprocess", "report", "ship"} | branches("unet") | branches("resnet_unet")


def test_every_image_is_tested_in_exactly_one_fold(crossval):
    repo, _ = crossval
    manifest = pd.read_csv(repo.root / "data" / "prepared" / "manifest.csv", dtype={"id": str})
    assert ((manifest[["fold0", "fold1"]] == "test").sum(axis=1) == 1).all()
    for arm in ARMS:
        tested = [pd.read_csv(repo.root / "evaluation" / f"{arm}-seed0-fold{fold}" / "per_image.csv", dtype={"id": str})["id"] for fold in (0, 1)]
        assert not set(tested[0]) & set(tested[1])
        assert sorted([*tested[0], *tested[1]]) == sorted(manifest["id"])


def test_report_has_the_pooled_table_and_a_verdict_per_pair(crossval):
    repo, _ = crossval
    report = (repo.root / "reports" / "report.md").read_text()
    assert "2-fold cross-validation" in report and "30 test images" in report
    for arm in ARMS:
        model, loss = arm.rsplit("-", 1)
        # one-epoch runs cannot be judged converged: every arm is marked, and so is every verdict
        assert re.search(rf"^\| {model} \| {loss} \*2 run\(s\) still learning\* \| \d\.\d{{3}} \[\d\.\d{{3}}, \d\.\d{{3}}\] \|", report, re.MULTILINE), report
    verdicts = re.findall(r"^- .*(?:beats .* by [+]\d\.\d{3} IoU|no difference detected).*\((?:model|loss) \w+\); not settled: .*$", report, re.MULTILINE)
    assert len(verdicts) == 1, report
    headline = json.loads((repo.root / "metrics" / "headline.json").read_text())
    assert set(headline) == ARMS


def readme_exp_show() -> list[str]:
    """The ``dvc exp show`` line the README gives for the headline table."""
    lines = (REPO / "README.md").read_text().splitlines()
    commands = {line.split("  #")[0].strip() for line in lines if line.strip().startswith("dvc exp show --drop")}
    assert len(commands) == 1, f"the README gives one headline `dvc exp show` line: {commands}"
    return shlex.split(commands.pop())


def test_readme_exp_show_line_leads_with_the_headline_in_under_40_columns(crossval):
    repo, _ = crossval
    rows = list(csv.reader(repo.run(*readme_exp_show(), "--csv").stdout.splitlines()))
    header = rows[0]
    assert len(header) < 40, header
    assert {f"{arm}.{field}" for arm in ARMS for field in ("iou", "iou_ci", "recall", "false_alarms")} <= set(header)
    assert {"compare.models", "compare.losses", "compare.folds"} <= set(header)
    plain = repo.run("dvc", "exp", "show", "--csv").stdout.splitlines()[0].split(",")
    assert not [column for column in plain if column.startswith(("threshold", "test.", "train.loss", "best/"))], "per-run detail is not a metric"


@pytest.mark.parametrize("change", [{"models.resnet_unet.decoder_width": 8}, {"models.resnet_unet.train": {"epochs": 3, "lr": 0.001}}])
def test_changing_one_models_params_or_recipe_changes_only_its_branches(crossval, change):
    repo, _ = crossval
    repo.set_params(**change)
    status = repo.run("dvc", "status")
    repo.run("git", "checkout", "params.yaml")
    expected = {f"train@resnet_unet-bce-0-{fold}" for fold in (0, 1)} | {"report", "ship"}  # the report and the card describe every model
    assert changed(status) == expected, status.stdout
    assert changed(repo.run("dvc", "status")) == set()
