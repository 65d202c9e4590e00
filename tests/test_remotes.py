"""DVC remotes against real servers on 127.0.0.1: push a full pipeline run, pull it into a
fresh clone, and check that nothing needs to run there.

- local: a directory remote;
- SSH: OpenSSH's sshd started by the test on a free port, key auth, through dvc-ssh;
- S3: moto's S3 server started by the test, through dvc-s3 with an endpointurl.

Credentials go in ``.dvc/config.local`` (``dvc remote modify --local``), which git never
sees, so the clone sets them again, as a teammate would. A server that cannot start is a
skip locally and a failure in CI (``CI=true``).
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY_PIPELINE, DvcRepo, changed, free_port, ran, unavailable, wait_for_port

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> DvcRepo:
    repo = DvcRepo(tmp_path_factory.mktemp("origin"))
    repo.set_params(**TINY_PIPELINE, **{"compare.losses": ["dice"]})
    repo.commit("tiny pipeline")
    repo.run("dvc", "repro")
    repo.commit("reproduced")
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
