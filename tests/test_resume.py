"""Resuming training through ``dvc repro`` in a real git + DVC repository.

A run killed mid-training resumes from its last saved epoch when nothing changed. A
finished run leaves nothing to resume, so a code change or ``dvc repro -f`` trains from
epoch 1, and an interrupted run whose code changed starts over with a warning. The
stages import the repository's own ``src/`` (``PYTHONPATH=src`` in ``dvc.yaml``), so a
one-line edit there is a real change to the code that trains.
"""

import os
import signal
import subprocess
import time

import pytest

from conftest import TINY_PIPELINE, DvcRepo
from defectseg.models.checkpoint import load_checkpoint

STAGE = "train@unet-bce-0-0"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    repo = DvcRepo(tmp_path_factory.mktemp("resume"))
    repo.set_params(**TINY_PIPELINE, **{"compare.losses": ["bce"]})
    repo.commit("tiny")
    repo.run("dvc", "repro", "preprocess")
    return repo


def reset(repo: DvcRepo) -> DvcRepo:
    """``repo`` with its committed code and params, no trained run, and an empty DVC cache (so
    DVC trains instead of checking out an earlier test's run)."""
    repo.run("git", "checkout", "--", "params.yaml", "src")
    repo.run("rm", "-rf", "models", "dvclive", "metrics/runs", "evaluation", ".dvc/cache")
    return repo


@pytest.fixture
def repo(prepared):
    return reset(prepared)


@pytest.fixture(scope="module")
def finished_template(prepared, tmp_path_factory):
    """A copy of the prepared repository after one finished 2-epoch run of ``STAGE`` (so no resume state)."""
    repo = reset(prepared)
    repo.set_params(**{"train.epochs": 2})
    repo.run("dvc", "repro", STAGE)
    assert not resume_state(repo).exists()
    return repo.copy_to(tmp_path_factory.mktemp("finished"))


@pytest.fixture
def finished(finished_template, tmp_path):
    """A fresh copy of the repository right after a finished 2-epoch run of ``STAGE``."""
    return finished_template.copy_to(tmp_path / "repo")


def resume_state(repo):
    return repo.root / "runs" / "unet-bce-seed0-fold0" / "last.pt"


def edit_losses(repo) -> None:
    """A one-line change to a module train imports, as a bug fix would be."""
    with open(repo.root / "src" / "defectseg" / "training" / "losses.py", "a") as module:
        module.write("# a one-line change\n")


def kill_mid_training(repo, epochs: int) -> int:
    """Start training for ``epochs``, SIGKILL it once two epochs are saved; the epochs saved."""
    repo.set_params(**{"train.epochs": epochs})
    env = {**os.environ, "PATH": f"{os.path.dirname(os.sys.executable)}:{os.environ['PATH']}"}
    process = subprocess.Popen(["dvc", "repro", STAGE], cwd=repo.root, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    last = resume_state(repo)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (last.exists() and len(load_checkpoint(last)["history"]) >= 2):
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    saved = len(load_checkpoint(last)["history"])
    assert 2 <= saved < epochs, "the kill must land in the middle of training"
    return saved


def warnings(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning: ")]


def test_killed_training_resumes_from_last_saved_epoch(repo):
    saved = kill_mid_training(repo, epochs=12)
    result = repo.run("dvc", "repro", "evaluate@unet-bce-0-0")
    assert f"resuming after epoch {saved} of 12" in result.stderr and warnings(result) == []
    assert "epoch 12/12" in result.stderr and f"epoch {saved}/12" not in result.stderr
    assert not resume_state(repo).exists(), "a finished run leaves no resume state"
    assert (repo.root / "metrics" / "runs" / "unet-bce-seed0-fold0.json").read_text().startswith("{")


@pytest.mark.slow
def test_killed_training_with_changed_code_starts_over_with_a_warning(repo):
    kill_mid_training(repo, epochs=12)
    edit_losses(repo)
    result = repo.run("dvc", "repro", STAGE)
    assert "resuming" not in result.stderr and "epoch 1/12" in result.stderr
    [warning] = warnings(result)
    assert "last.pt: saved by other code (defectseg/training/losses.py changed); training from scratch" in warning


@pytest.mark.slow
def test_code_change_after_a_finished_run_trains_every_epoch_again(finished):
    edit_losses(finished)
    assert "modified:" in finished.run("dvc", "status", STAGE).stdout
    result = finished.run("dvc", "repro", STAGE)
    assert "resuming" not in result.stderr and "epoch 1/2" in result.stderr and "epoch 2/2" in result.stderr
    assert "up to date" in finished.run("dvc", "status", STAGE).stdout


@pytest.mark.slow
def test_forced_repro_after_a_finished_run_trains_from_epoch_1(finished):
    result = finished.run("dvc", "repro", "-f", "-s", STAGE)
    assert "resuming" not in result.stderr and "epoch 1/2" in result.stderr


@pytest.mark.slow
def test_damaged_resume_file_is_discarded_with_a_warning(repo):
    repo.set_params(**{"train.epochs": 2})
    last = resume_state(repo)
    last.parent.mkdir(parents=True, exist_ok=True)
    last.write_bytes(b"not a checkpoint")
    result = repo.run("dvc", "repro", STAGE)
    [warning] = warnings(result)
    assert "last.pt" in warning and "training from scratch" in warning
    assert "Traceback" not in result.stderr and "epoch 1/2" in result.stderr and "epoch 2/2" in result.stderr
    assert not last.exists()
