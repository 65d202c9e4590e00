"""The whole pipeline through ``dvc repro`` and ``dvc exp run`` in a real git + DVC repository."""

import json
import re

import pytest

from conftest import changed, copy_of_tiny_reproduced, ran


@pytest.fixture(scope="module")
def reproduced(tiny_reproduced, tmp_path_factory):
    """The tiny three-loss pipeline, reproduced and committed, and its first ``dvc repro``'s output."""
    return copy_of_tiny_reproduced(tiny_reproduced, tmp_path_factory.mktemp("pipeline"))


def test_repro_runs_every_stage_and_writes_the_three_loss_report(reproduced):
    repo, first = reproduced
    assert ran(first) == {
        "prepare", "preprocess", "train@unet-bce-0-0", "train@unet-dice-0-0", "train@unet-dicebce-0-0",
        "evaluate@unet-bce-0-0", "evaluate@unet-dice-0-0", "evaluate@unet-dicebce-0-0", "report", "ship",
    }  # fmt: skip
    report = (repo.root / "reports" / "report.md").read_text()
    for loss in ("bce", "dice", "dicebce"):
        assert re.search(rf"^\| unet \| {loss} \| \d\.\d{{3}} \[", report, re.MULTILINE), report
    comparison = json.loads((repo.root / "metrics" / "comparison.json").read_text())
    assert set(comparison["arms"]) == {"unet-bce", "unet-dice", "unet-dicebce"}


def test_second_repro_does_nothing(reproduced):
    repo, _ = reproduced
    assert ran(repo.run("dvc", "repro")) == set()
    assert changed(repo.run("dvc", "status")) == set()


def test_a_training_schema_change_leaves_the_data_stages_up_to_date(reproduced):
    """Each stage depends on the schema of the params sections it reads: prepare and preprocess read
    no training option, and evaluate reads none either (it re-runs once train writes new models)."""
    repo, _ = reproduced
    schema = repo.root / "src" / "defectseg" / "config" / "train.py"
    original = schema.read_text()
    schema.write_text(original.replace("class TrainParams(Section):", "class TrainParams(Section):\n    # a new training option goes here"))
    try:
        named = changed(repo.run("dvc", "status"))
    finally:
        schema.write_text(original)
    assert named == {"train@unet-bce-0-0", "train@unet-dice-0-0", "train@unet-dicebce-0-0", "report", "ship"}
    assert changed(repo.run("dvc", "status")) == set()



def test_a_report_or_inference_change_retrains_nothing(reproduced):
    """Train depends on what training runs: an edit to the report's or evaluate's schema, or to how
    saved models are loaded, leaves every train stage up to date (and a leftover file in a run's
    scratch folder changes no stage)."""
    repo, _ = reproduced
    edits = {
        repo.root / "src" / "defectseg" / "config" / "report.py": ("class ReportParams(Section):", "class ReportParams(Section):\n    # a new report option goes here"),
        repo.root / "src" / "defectseg" / "config" / "evaluate.py": ("class EvaluateParams(Section):", "class EvaluateParams(Section):\n    # a new evaluate option goes here"),
        repo.root / "src" / "defectseg" / "models" / "saved_model.py": ("def load_model(", "# how models load changed\ndef load_model("),
    }
    originals = {path: path.read_text() for path in edits}
    scratch = repo.root / "runs" / "unet-bce-seed0-fold0" / "leftover.json"
    scratch.parent.mkdir(parents=True, exist_ok=True)
    scratch.write_text("{}")
    try:
        for path, (old, new) in edits.items():
            assert old in originals[path]
            path.write_text(originals[path].replace(old, new))
        named = changed(repo.run("dvc", "status"))
    finally:
        for path, text in originals.items():
            path.write_text(text)
        scratch.unlink()
    assert named and not {stage for stage in named if stage.startswith("train@")}
    assert changed(repo.run("dvc", "status")) == set()

def test_metrics_are_visible_to_dvc(reproduced):
    repo, _ = reproduced
    shown = json.loads(repo.run("dvc", "metrics", "show", "--json").stdout)
    (workspace,) = shown.values()
    assert list(workspace["data"]) == ["metrics/headline.json"]
    assert set(workspace["data"]["metrics/headline.json"]["data"]["unet-bce"]) == {"iou", "iou_ci", "recall", "recall_ci", "false_alarms", "false_alarms_ci"}


@pytest.mark.slow
def test_retraining_from_scratch_gives_identical_metrics_and_model_files(reproduced):
    repo, _ = reproduced
    outputs = [*(repo.root / "metrics" / "runs").glob("*.json"), repo.root / "models" / "unet-bce-seed0-fold0" / "model.pt"]
    before = {p.name: p.read_bytes() for p in outputs}
    result = repo.run("dvc", "repro", "--force", "train@unet-bce-0-0", "evaluate@unet-bce-0-0")
    assert "resuming" not in result.stderr and "epoch 1/2" in result.stderr
    after = {p.name: p.read_bytes() for p in outputs}
    assert after == before


@pytest.mark.slow
def test_one_loss_setting_reruns_only_that_branch_and_the_report(reproduced):
    repo, _ = reproduced
    result = repo.run("dvc", "exp", "run", "-S", "losses.dice.smooth=2.0")
    assert ran(result) == {"train@unet-dice-0-0", "evaluate@unet-dice-0-0", "report", "ship"}
    header = repo.run("dvc", "exp", "show", "--csv", "--no-pager").stdout.splitlines()[0].split(",")
    assert {"unet-bce.iou", "unet-dice.iou", "unet-dicebce.iou"} <= set(header)


def test_pr_report_names_the_changed_param_and_metric(reproduced):
    repo, _ = reproduced
    repo.set_params(**{"losses.bce.pos_weight": 2.0})
    repo.run("dvc", "repro")
    repo.commit("bce pos_weight 2")
    repo.run("python", "-m", "defectseg.cli.pr_report", "--base", "HEAD~1", "--out", "comment.md")
    comment = (repo.root / "comment.md").read_text()
    params_part = comment.split("## Params")[1].split("## Comparison")[0]
    metrics_part = comment.split("## Metrics")[1].split("## Params")[0]
    assert "losses.bce.pos_weight" in params_part and "| 1.0 " in params_part and "| 2.0 " in params_part
    assert "unet-bce.iou" in metrics_part and "metrics/headline.json" in metrics_part
    assert "| unet | bce |" in comment.split("## Comparison")[1]


@pytest.mark.slow
def test_two_queued_experiments_run_side_by_side(reproduced):
    import csv
    import time

    repo, _ = reproduced
    for samples in ("300", "400"):  # each reruns only the report (its own outputs, written side by side), so the test stays short
        repo.run("dvc", "exp", "run", "--queue", "-S", f"report.bootstrap_samples={samples}")
    repo.run("dvc", "queue", "start", "-j", "2")
    deadline = time.monotonic() + 400
    status = ""
    while time.monotonic() < deadline:
        status = repo.run("dvc", "queue", "status").stdout
        if "Running" not in status and "Queued" not in status:
            break
        time.sleep(1)
    repo.run("dvc", "queue", "stop", check=False)
    assert status.count("Success") == 2 and "Failed" not in status, status
    rows = list(csv.DictReader(repo.run("dvc", "exp", "show", "--csv", "--no-pager").stdout.splitlines()))
    finished = {row["report.bootstrap_samples"]: row["unet-bce.iou_ci"] for row in rows if row["typ"].startswith("branch")}
    assert set(finished) == {"300", "400"} and all(value.startswith("[") for value in finished.values()), finished
