"""An edit made while `dvc repro` trains never leaves a result recorded under it (real git + DVC repository).

Each test starts a long tiny training under ``dvc repro``, waits until its first epoch is
saved (``last.pt`` exists: the run is under way), makes an edit, and lets the run finish.
"""

import re
import subprocess
import sys
import time

import pytest
import yaml

from conftest import TINY_PIPELINE, DvcRepo, changed, command_env, ran

RUN = "unet-bce-seed0-fold0"
STAGE = "train@unet-bce-0-0"


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> DvcRepo:
    repo = DvcRepo(tmp_path_factory.mktemp("guard"))
    repo.set_params(**{**TINY_PIPELINE, "compare.losses": ["bce"], "train.epochs": 12})
    repo.commit("tiny pipeline, one long arm")
    repo.run("dvc", "repro", "preprocess")
    return repo


def repro_editing(repo: DvcRepo, edit) -> subprocess.CompletedProcess:
    """``dvc repro train``, with ``edit()`` called once its first epoch is saved."""
    process = subprocess.Popen(["dvc", "repro", STAGE], cwd=repo.root, env=command_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state = repo.root / "runs" / RUN / "last.pt"
    deadline = time.monotonic() + 120
    while not state.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "training ended before it could be edited: raise train.epochs"
    edit()
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def locked_lr(repo: DvcRepo) -> object:
    lock = yaml.safe_load((repo.root / "dvc.lock").read_text())
    return lock["stages"].get(STAGE, {}).get("params", {}).get("params.yaml", {}).get("train", {}).get("lr")


@pytest.mark.slow
def test_a_params_edit_during_training_fails_the_stage_and_records_nothing(repo):
    repo.set_params(**{"train.lr": 0.003})
    result = repro_editing(repo, lambda: repo.set_params(**{"train.lr": 0.0007}))
    assert result.returncode != 0
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert f"{STAGE}: changed while it ran" in line and "train.lr: the run used 0.003, params.yaml now has 0.0007" in line
    assert locked_lr(repo) != 0.0007
    assert STAGE in changed(repo.run("dvc", "status"))


def test_a_code_edit_during_training_fails_the_stage_and_the_next_repro_runs_it_again(repo):
    losses = repo.root / "src" / "defectseg" / "training" / "losses.py"
    result = repro_editing(repo, lambda: losses.write_text(losses.read_text() + "\n# edited during the run\n"))
    assert result.returncode != 0
    assert re.search(r"error: .*src/defectseg/training/losses\.py was edited after the run started \(the run used SHA-256 [0-9a-f]{12}", result.stderr)
    assert STAGE in changed(repo.run("dvc", "status"))
    assert STAGE in ran(repo.run("dvc", "repro", STAGE))
    assert changed(repo.run("dvc", "status")) - {"evaluate@unet-bce-0-0", "report", "ship"} == set()


@pytest.mark.slow
def test_an_edit_the_stage_does_not_track_lets_it_record(repo):
    repo.set_params(**{"train.lr": 0.002})
    result = repro_editing(repo, lambda: repo.set_params(**{"report.confidence": 0.9}))
    assert result.returncode == 0, result.stderr
    assert locked_lr(repo) == 0.002


def test_the_process_start_time_is_read_to_the_clock_tick():
    """The guard's "written after the run started" rule needs the start to the tick: a reading early
    by up to a second (psutil's, from the whole-second boot time) took files that ``dvc exp run
    --temp`` had just written for edits made during the run."""
    before = time.time()
    child = subprocess.run(
        [sys.executable, "-c", "from defectseg.foundation.stage import process_start_time; print(repr(process_start_time()))"],
        env=command_env(), capture_output=True, text=True, check=True,
    )
    after = time.time()
    assert before - 0.02 <= float(child.stdout) <= after
