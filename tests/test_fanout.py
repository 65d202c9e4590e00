"""A comparison fanned out over two machines through DVC's run-cache (real git + DVC repositories).

Two clones are the two workers (``defectseg worker --slice 1/2`` and ``2/2``), a third
assembles (``defectseg assemble``); the remote is a local folder or an SSH server on
127.0.0.1. Two comparisons: the committed one (its ``dvc.lock`` names every arm, but no
output is on the remote: the workers' runs must give the very bytes it names) and a new one
(a params commit no machine has run). Each assembly trains and evaluates nothing and writes
the report one machine running everything wrote, byte for byte; an assembly tried before
every arm was pushed fails at once, naming the missing arm, and trains nothing. The committed
comparison also goes over a local remote through a real SLURM controller and node on 127.0.0.1
(``cluster/slurm/submit.sh``: a two-task job array of workers and an assembly that waits for both).

Each case trains every arm again on other machines: these run with ``pytest -m slow``. The default
run keeps the mechanism they rest on: ``test_remotes.py`` pushes runs with their run-cache and
pulls them into a fresh clone whose ``dvc repro`` runs nothing, and ``test_scheduler_slice.py``
deals the arms into slices.
"""

import getpass
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, TINY_PIPELINE, DvcRepo, command_env, free_port, ran, teammate_clone, unavailable

pytestmark = pytest.mark.slow

ARMS = {"unet-bce-0-0", "unet-dice-0-0"}
NEW_PARAMS = {"train.lr": 0.002}


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> tuple[DvcRepo, bytes]:
    """The project and its committed two-arm comparison, with its report as one machine running
    every stage writes it."""
    repo = DvcRepo(tmp_path_factory.mktemp("origin"))
    repo.set_params(**{**TINY_PIPELINE, "compare.losses": ["bce", "dice"]})
    repo.commit("two-arm comparison")
    repo.run("dvc", "repro")
    repo.commit("the comparison, run on one machine")
    return repo, (repo.root / "reports" / "report.md").read_bytes()


@pytest.fixture(scope="module")
def new_comparison(origin) -> tuple[str, bytes]:
    """A branch of ``origin`` with a commit of new params that no worker has run, and the report
    one machine running every stage writes for it; ``origin`` is left on its own branch."""
    repo, _ = origin
    home = repo.run("git", "branch", "--show-current").stdout.strip()
    repo.run("git", "checkout", "-q", "-b", "new-comparison")
    repo.set_params(**NEW_PARAMS)
    repo.commit("a new comparison")
    repo.run("dvc", "repro")
    new = (repo.root / "reports" / "report.md").read_bytes()
    repo.run("git", "checkout", "--", ".")
    repo.run("git", "checkout", "-q", home)
    return "new-comparison", new


def machine(origin: DvcRepo, folder: Path, remote: str, secret: dict) -> DvcRepo:
    """A fresh clone of ``origin`` at the committed comparison, its default remote set as a teammate sets it."""
    return teammate_clone(origin, folder, remote, secret)


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
        ("ssh", "new"),
        ("local", "committed"),
        ("local", "new"),
        ("ssh", "committed"),
    ],
)
def test_two_workers_and_an_assembler_give_the_one_machine_report(origin, tmp_path, kind, comparison, request):
    repo, committed = origin
    branch, new = request.getfixturevalue("new_comparison") if comparison == "new" else (None, None)
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


SLURM_DAEMONS = ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol")


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A SLURM controller and one node (2 CPUs) on 127.0.0.1, Debian's slurm-wlm; yields the
    environment its commands need (``SLURM_CONF``)."""
    missing = [name for name in SLURM_DAEMONS if not shutil.which(name) and not Path(f"/usr/sbin/{name}").exists()]
    if missing:
        unavailable(f"Debian's slurm-wlm is not installed ({', '.join(missing)} not found; .ci/run installs it as root)")
    root = tmp_path_factory.mktemp("slurm")
    (root / "state").mkdir()
    (root / "spool").mkdir()
    user = getpass.getuser()
    conf = root / "slurm.conf"
    conf.write_text(
        f"ClusterName=defectseg\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort={free_port()}\nSlurmdPort={free_port()}\n"
        f"AuthType=auth/none\nCredType=cred/none\nSlurmUser={user}\nSlurmdUser={user}\n"
        f"StateSaveLocation={root / 'state'}\nSlurmdSpoolDir={root / 'spool'}\n"
        f"SlurmctldPidFile={root / 'slurmctld.pid'}\nSlurmdPidFile={root / 'slurmd.pid'}\n"
        f"SlurmctldLogFile={root / 'slurmctld.log'}\nSlurmdLogFile={root / 'slurmd.log'}\n"
        "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nSelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n"
        "MpiDefault=none\nReturnToService=2\nAccountingStorageType=accounting_storage/none\nJobAcctGatherType=jobacct_gather/none\n"
        "NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 State=UNKNOWN\n"
        "PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n"
    )
    env = dict(command_env(), SLURM_CONF=str(conf))
    daemons = [subprocess.Popen([shutil.which(name) or f"/usr/sbin/{name}", "-D", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
               for name, args in (("slurmctld", ["-i"]), ("slurmd", ["-N", "localhost"]))]  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while "idle" not in subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout:
            if time.monotonic() > deadline or any(daemon.poll() is not None for daemon in daemons):
                logs = "".join((root / name).read_text()[-400:] for name in ("slurmctld.log", "slurmd.log") if (root / name).exists())
                pytest.fail(f"SLURM on 127.0.0.1 did not come up: {logs}")
            time.sleep(0.5)
        yield env
    finally:
        for daemon in daemons:
            daemon.terminate()
            daemon.wait(10)


def wait_for_jobs(jobs: list[str], env: dict, seconds: float = 900) -> dict[str, str]:
    """Each job's (or array task's) final state, once no job of ``jobs`` is pending or running."""
    deadline = time.monotonic() + seconds
    while subprocess.run(["squeue", "-h", "-j", ",".join(jobs)], env=env, capture_output=True, text=True).stdout.strip():
        assert time.monotonic() < deadline, "the SLURM jobs did not end"
        time.sleep(1)
    shown = "".join(subprocess.run(["scontrol", "-o", "show", "job", job], env=env, capture_output=True, text=True).stdout for job in jobs)
    return dict(re.findall(r"JobId=(\S+) .*?JobState=(\S+)", shown))


def test_a_slurm_array_of_workers_and_its_dependent_assembly_give_the_one_machine_report(origin, tmp_path, slurm):
    repo, committed = origin
    assembler = machine(repo, tmp_path / "assembler", str(tmp_path / "store"), {})
    env = dict(slurm, DEFECTSEG_REPO=str(repo.root), DEFECTSEG_VENV=sys.prefix, DEFECTSEG_SCRATCH=str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    submitted = subprocess.run([str(REPO / "cluster" / "slurm" / "submit.sh"), "2"], cwd=assembler.root, env=env, capture_output=True, text=True)
    assert submitted.returncode == 0, submitted.stderr
    array, assembly = re.fullmatch(r"workers: job array (\d+) \(2 tasks\); assembly: job (\d+), once every worker succeeded\n", submitted.stdout).groups()
    states = wait_for_jobs([array, assembly], env)
    logs = {path.name: path.read_text() for path in assembler.root.glob("defectseg-*.out")}
    assert set(states.values()) == {"COMPLETED"} and len(states) == 3, (states, logs)
    workers = [logs[f"defectseg-worker-{array}_{task}.out"] for task in (1, 2)]
    assert [{name for name in re.findall(r"Running stage '(train@[^']+)'", log)} for log in workers] == [{"train@unet-bce-0-0"}, {"train@unet-dice-0-0"}]
    assert_assembled(logs[f"defectseg-assemble-{assembly}.out"], assembler, committed)
    assert not list((tmp_path / "scratch").iterdir()), "each worker removes its clone"
