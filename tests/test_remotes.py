"""DVC remotes against real servers on 127.0.0.1: push a full pipeline run, pull it into a
fresh clone, and check that nothing needs to run there.

- local: a directory remote;
- SSH: OpenSSH's sshd started by the test on a free port, key auth, through dvc-ssh;
- S3: moto's S3 server started by the test, through dvc-s3 with an endpointurl.

Credentials go in ``.dvc/config.local`` (``dvc remote modify --local``), which git never
sees, so the clone sets them again, as a teammate would. A server that cannot start is a
skip locally and a failure in CI (``CI=true``).
"""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import DvcRepo, changed, copy_of_tiny_reproduced, free_port, gray, ran, teammate_clone, unavailable, wait_for_port, write_png

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def origin(tiny_reproduced, tmp_path_factory) -> DvcRepo:
    """The tiny three-loss pipeline, reproduced and committed: a team's committed comparison."""
    repo, _ = copy_of_tiny_reproduced(tiny_reproduced, tmp_path_factory.mktemp("origin"))
    return repo


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3-compatible server on 127.0.0.1; yields its endpoint URL."""
    binary = BIN / "moto_server"
    if not binary.exists():
        unavailable("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    process = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if not wait_for_port(port, process):
        process.kill()
        unavailable("moto_server did not start")
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


def round_trip(origin: DvcRepo, tmp_path: Path, name: str, url: str, shared: dict, secret: dict) -> dict:
    """Push the run to remote ``name`` at ``url``, pull it into a fresh clone, return timings."""
    origin.run("dvc", "remote", "add", "--force", "--default", name, url)
    for key, value in shared.items():
        origin.run("dvc", "remote", "modify", name, key, value)
    for key, value in secret.items():
        origin.run("dvc", "remote", "modify", "--local", name, key, value)
    origin.commit("remote store")
    start = time.perf_counter()
    origin.run("dvc", "push", "--run-cache")
    pushed = time.perf_counter() - start

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(origin.root), str(clone)], check=True)
    teammate = DvcRepo(clone, create=False)
    assert not (clone / "models" / "unet-dice-seed0-fold0" / "model.pt").exists()
    for key, value in secret.items():
        teammate.run("dvc", "remote", "modify", "--local", name, key, value)
    start = time.perf_counter()
    teammate.run("dvc", "pull", "--run-cache")
    pulled = time.perf_counter() - start

    for path in ("models/unet-dice-seed0-fold0/model.pt", "data/preprocessed/info.json", "evaluation/unet-dice-seed0-fold0/per_image.csv"):
        assert (clone / path).read_bytes() == (origin.root / path).read_bytes(), path
    assert changed(teammate.run("dvc", "status")) == set()
    assert ran(teammate.run("dvc", "repro")) == set()
    print(f"\n{name} remote: push {pushed:.2f} s, pull {pulled:.2f} s")
    return {"push": pushed, "pull": pulled}


@pytest.mark.slow
def test_local_remote_round_trip(origin, tmp_path):
    round_trip(origin, tmp_path, "local", str(tmp_path / "store"), {}, {})


def test_ssh_remote_round_trip(origin, tmp_path, sshd):
    port, user, key = sshd
    round_trip(origin, tmp_path, "ssh", f"ssh://127.0.0.1:{port}{tmp_path / 'ssh-store'}", {}, {"user": user, "keyfile": str(key)})


def test_s3_remote_round_trip(origin, tmp_path, s3_server):
    import boto3

    boto3.client("s3", endpoint_url=s3_server, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1").create_bucket(
        Bucket="defects"
    )
    round_trip(
        origin, tmp_path, "s3", "s3://defects/store", {"endpointurl": s3_server, "region": "us-east-1"},
        {"access_key_id": "test", "secret_access_key": "test"},
    )  # fmt: skip


# Faults a team meets on a shared remote (docs/remote-and-prs.md, "What a team sets on its remote").

RUN_MODEL = "models/unet-dice-seed0-fold0/model.pt"


def locked_md5(repo: DvcRepo, path: str) -> str:
    lock = yaml.safe_load((repo.root / "dvc.lock").read_text())
    return next(out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", []) if out["path"] == path)


def teammate(origin: DvcRepo, folder: Path, store: Path, **settings: str) -> DvcRepo:
    """A fresh clone of ``origin`` with ``store`` as its default remote (set locally, as a teammate sets it)."""
    return teammate_clone(origin, folder, str(store), settings)


def publish(origin: DvcRepo, store: Path) -> None:
    """Push the committed run of ``origin`` with its run-cache to ``store`` (a remote set locally there)."""
    name = f"store-{store.parent.name}"
    origin.run("dvc", "remote", "add", "--local", "--force", name, str(store))
    origin.run("dvc", "push", "--run-cache", "-r", name)


def test_a_corrupt_object_on_the_remote_is_refused_at_pull_with_verify_set(origin, tmp_path):
    store = tmp_path / "store"
    publish(origin, store)
    md5 = locked_md5(origin, RUN_MODEL)
    stored = store / "files" / "md5" / md5[:2] / md5[2:]
    stored.write_bytes(b"bit rot" + stored.read_bytes()[7:])

    checked = teammate(origin, tmp_path / "checked", store, verify="true")
    result = checked.run("dvc", "pull", check=False)
    assert result.returncode != 0
    assert RUN_MODEL in result.stderr.splitlines(), "DVC names the file whose object failed its hash"
    assert not (checked.root / RUN_MODEL).exists(), "nothing corrupt is checked out"
    assert (checked.root / "data" / "preprocessed" / "info.json").is_file(), "the sound objects arrive"

    unchecked = teammate(origin, tmp_path / "unchecked", store)
    assert unchecked.run("dvc", "pull", check=False).returncode == 0, "without verify, DVC takes the object as it is"
    assert (unchecked.root / RUN_MODEL).read_bytes().startswith(b"bit rot")
    tile = write_png(tmp_path / "tiles" / "tile.png", gray())
    refused = unchecked.run("defectseg", "predict", "--model", RUN_MODEL, "--out", str(tmp_path / "masks"), str(tile), check=False)
    (line,) = refused.stderr.strip().splitlines()
    assert refused.returncode == 1 and line.startswith(f"error: {RUN_MODEL}: not a readable checkpoint"), "the pipeline refuses it in one line naming the file"


def experiment_commit(repo: DvcRepo, name: str) -> str:
    refs = repo.run("git", "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps").stdout.splitlines()
    (commit,) = [line.split()[1] for line in refs if line.split()[0].endswith(f"/{name}")]
    return commit


@pytest.mark.slow
def test_two_workspaces_pushing_the_same_experiment_name_keep_the_first(origin, tmp_path):
    store = tmp_path / "store"
    publish(origin, store)
    first, second = (teammate(origin, tmp_path / name, store) for name in ("first", "second"))
    for clone, samples in ((first, 300), (second, 400)):
        clone.run("dvc", "pull", "--run-cache")
        clone.run("dvc", "exp", "run", "-n", "bootstrap-check", "-S", f"report.bootstrap_samples={samples}")
    first.run("dvc", "exp", "push", "origin", "bootstrap-check")
    refused = second.run("dvc", "exp", "push", "origin", "bootstrap-check")
    # DVC 3.67 refuses, but exits 0: a script must read the message (docs/remote-and-prs.md)
    assert "bootstrap-check" in refused.stderr and "has diverged from remote experiment with the" in refused.stderr
    assert experiment_commit(origin, "bootstrap-check") == experiment_commit(first, "bootstrap-check") != experiment_commit(second, "bootstrap-check")


@pytest.mark.slow
def test_the_recommended_gc_keeps_the_committed_runs_and_a_teammates_pushed_experiment(origin, tmp_path):
    store = tmp_path / "store"
    publish(origin, store)
    other = teammate(origin, tmp_path / "other", store)
    other.run("dvc", "pull", "--run-cache")
    other.run("dvc", "exp", "run", "-n", "only-on-the-remote", "-S", "losses.dice.smooth=2.0")
    other.run("dvc", "exp", "push", "origin", "only-on-the-remote")

    naive = teammate(origin, tmp_path / "naive", store)
    dry = naive.run("dvc", "gc", "-c", "-A", "-a", "-T", "--all-experiments", "--dry", "-f")
    assert re.search(r"Removed \d+ objects from remote", dry.stdout), "without the teammate's experiment fetched, gc would delete its outputs"
    maintainer = teammate(origin, tmp_path / "maintainer", store)
    maintainer.run("dvc", "exp", "pull", "origin", "-A", "--no-cache")
    maintainer.run("dvc", "gc", "-c", "-A", "-a", "-T", "--all-experiments", "-f")

    fresh = teammate(origin, tmp_path / "fresh", store)
    fresh.run("dvc", "pull", "--run-cache")
    assert (fresh.root / RUN_MODEL).read_bytes() == (origin.root / RUN_MODEL).read_bytes()
    assert ran(fresh.run("dvc", "repro")) == set(), "the committed comparison's runs survive"
    fresh.run("dvc", "exp", "pull", "origin", "only-on-the-remote")
    fresh.run("dvc", "exp", "apply", "only-on-the-remote")
    assert changed(fresh.run("dvc", "status")) == set(), "the teammate's experiment keeps its outputs"
