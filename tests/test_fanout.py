"""A comparison fanned out over two machines through DVC's run-cache (real git + DVC repositories).

Two clones are the two workers (``defectseg worker --slice 1/2`` and ``2/2``), a third
assembles (``defectseg assemble``); the remote is a local folder or an SSH server on
127.0.0.1. Two comparisons: the committed one (its ``dvc.lock`` names every arm, but no
output is on the remote: the workers' runs must give the very bytes it names) and a new one
(a params commit no machine has run). Each assembly trains and evaluates nothing and writes
the report one machine running everything wrote, byte for byte; an assembly tried before
every arm was pushed fails at once, naming the missing arm, and trains nothing. The default
run takes the committed comparison over the local remote and the new one over SSH (the two
remotes, the two comparisons); ``pytest -m slow`` adds the other two pairs.
"""

import re
import subprocess
from pathlib import Path

import pytest

from conftest import TINY_PIPELINE, DvcRepo, ran

ARMS = {"unet-bce-0-0", "unet-dice-0-0"}
NEW_PARAMS = {"train.lr": 0.002}


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> tuple[DvcRepo, str, bytes, bytes]:
    """The project, its committed two-arm comparison, then a commit of new params that nothing
    has run; with each comparison's report as one machine running every stage writes it."""
    repo = DvcRepo(tmp_path_factory.mktemp("origin"))
    repo.set_params(**{**TINY_PIPELINE, "compare.losses": ["bce", "dice"]})
    repo.commit("two-arm comparison")
    repo.run("dvc", "repro")
    repo.commit("the comparison, run on one machine")
    committed = (repo.root / "reports" / "report.md").read_bytes()
    repo.set_params(**NEW_PARAMS)
    repo.commit("a new comparison")
    repo.run("dvc", "repro")
    new = (repo.root / "reports" / "report.md").read_bytes()
    repo.run("git", "checkout", "--", ".")
    return repo, repo.run("git", "branch", "--show-current").stdout.strip(), committed, new


def machine(origin: DvcRepo, folder: Path, remote: str, secret: dict) -> DvcRepo:
    """A fresh clone of ``origin`` at the committed comparison, its default remote set as a teammate sets it."""
    subprocess.run(["git", "clone", "-q", str(origin.root), str(folder)], check=True)
    clone = DvcRepo(folder, create=False)
    clone.run("git", "checkout", "-q", "HEAD~1")
    clone.run("dvc", "remote", "add", "--local", "--default", "team", remote)
    for key, value in secret.items():
        clone.run("dvc", "remote", "modify", "--local", "team", key, value)
    return clone


def fan_out(workers: list[DvcRepo], assembler: DvcRepo, early_assembly: bool = False) -> str:
    """Each worker runs its slice; the assembler assembles; return the assembler's output.

    With ``early_assembly`` the assembler also tries once before the last worker has pushed:
    that fails at once, naming the arm nobody ran, and trains nothing."""
    for index, worker in enumerate(workers, start=1):
        if early_assembly and index == len(workers):
            assert_missing_arm_named(assembler, "train@unet-dice-0-0", "unet-dice-seed0-fold0")
        result = worker.run("defectseg", "worker", "--slice", f"{index}/{len(workers)}")
        trained = {name.removeprefix("train@") for name in ran(result) if name.startswith("train@")}
        assert len(trained) == 1, result.stdout
    result = assembler.run("defectseg", "assemble")
    return result.stdout


def assert_missing_arm_named(assembler: DvcRepo, stage: str, run: str) -> None:
    result = assembler.run("defectseg", "assemble", check=False)
    assert result.returncode != 0
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error: train@")]
    assert line.startswith(f"error: {stage}: no run of it in DVC's run-cache")
    assert "epoch 1/" not in result.stderr
    assert not (assembler.root / "models" / run / "model.pt").exists()


def assert_assembled(output: str, assembler: DvcRepo, report: bytes) -> None:
    assert ran_arms(output) == set(), output
    # restored: from the run-cache, as the outputs dvc.lock names (the committed comparison), or
    # by an earlier assembly that stopped at a missing arm
    restored = re.findall(r"Stage '([^']+)' is cached - skipping run|Pulling data for stage: '([^']+)'|Stage '([^']+)' didn't change", output)
    restored = {name for group in restored for name in group if name}
    assert {f"{stage}@{arm}" for stage in ("train", "evaluate") for arm in ARMS} <= restored, output
    assert (assembler.root / "reports" / "report.md").read_bytes() == report


def ran_arms(output: str) -> set[str]:
    return {name for name in re.findall(r"Running stage '([^']+)'", output) if name.startswith(("train@", "evaluate@"))}


@pytest.mark.parametrize(
    ("kind", "comparison"),
    [
        ("local", "committed"),
        ("ssh", "new"),
        # the other two pairs add no DVC path the two above do not take; `pytest -m slow` runs them
        pytest.param("local", "new", marks=pytest.mark.slow),
        pytest.param("ssh", "committed", marks=pytest.mark.slow),
    ],
)
def test_two_workers_and_an_assembler_give_the_one_machine_report(origin, tmp_path, kind, comparison, request):
    repo, branch, committed, new = origin
    if kind == "local":
        remote, secret = str(tmp_path / "store"), {}
    else:
        port, user, key = request.getfixturevalue("sshd")
        remote, secret = f"ssh://127.0.0.1:{port}{tmp_path / 'ssh-store'}", {"user": user, "keyfile": str(key)}
    workers = [machine(repo, tmp_path / f"worker{i}", remote, secret) for i in (1, 2)]
    assembler = machine(repo, tmp_path / "assembler", remote, secret)

    if comparison == "committed":
        assert_assembled(fan_out(workers, assembler), assembler, committed)
        assert assembler.run("git", "status", "--porcelain", "reports", "metrics/headline.json").stdout == ""
        return
    for clone in (*workers, assembler):
        clone.run("git", "checkout", "-q", branch)
    assert_assembled(fan_out(workers, assembler, early_assembly=True), assembler, new)
