"""Shared fixtures: default params, small real image files, and a real git + DVC repo."""

import contextlib
import getpass
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from filelock import FileLock
from PIL import Image

from defectseg.config.params import Params, parse_params
from defectseg.config.params import apply_overrides as override

REPO = Path(__file__).resolve().parents[1]
MTD = REPO.parent / "shared" / "datasets" / "magnetic-tile"


def pytest_configure(config):
    """Under pytest-xdist, each worker is its own machine for the thread budget: its
    processes hold job slots in their own temporary folder, so a test's thread counts (and
    with them its floating-point results) never depend on what another worker runs.

    Two workers' processes then hold more threads than there are cores, and OpenMP's
    threads spin while they wait for work, burning the cores the other worker needs:
    passive waiting (set before any process imports torch) cut two pipeline-driving test
    files from 138 s to 118 s, measured side by side on 2 cores."""
    # the project's cache (fetched registry versions, exported graphs) in this run's temporary folder, not the home's
    os.environ["DEFECTSEG_CACHE"] = tempfile.mkdtemp(prefix="defectseg-cache-")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        folder = Path(tempfile.gettempdir()) / f"defectseg-tests-{os.getuid()}-{worker}"
        folder.mkdir(exist_ok=True)
        os.environ["TMPDIR"] = str(folder)
        tempfile.tempdir = None
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# The test files that take longest, longest first (about 190 s for test_pipeline down to 40 s for
# test_stage_guard in the default run, from the durations of a fresh clone's run on 2 cores on
# 2026-12-07). xdist hands each worker whole files in collection order (`--no-loadscope-reorder`:
# its default orders files by their number of tests, which sent these few-test files last and left
# one worker running them alone); longest first, the short files fill in at the end.
LONGEST_FILES = (
    "test_pipeline.py", "test_data_artifact.py", "test_crossval_pipeline.py", "test_fanout.py", "test_remotes.py",
    "test_faults.py", "test_experiments.py", "test_resume.py", "test_registry.py", "test_page.py", "test_stage_guard.py",
)


def pytest_collection_modifyitems(items):
    """Collect the longest test files first (``LONGEST_FILES``), the rest in their own order."""
    rank = {name: index for index, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def default_params_dict() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def params_with(**overrides) -> Params:
    """Default params with dotted-key overrides."""
    return parse_params(override(default_params_dict(), overrides))


def write_png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def gray(height: int = 48, width: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)


def square_mask(height: int = 48, width: int = 48) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[10:20, 10:20] = 255
    return mask


def make_plain(root: Path, n: int = 4) -> Path:
    """An images/ + masks/ folder of ``n`` pairs, half with a defect."""
    for i in range(n):
        write_png(root / "images" / f"img{i}.png", gray(seed=i))
        write_png(root / "masks" / f"img{i}.png", square_mask() if i % 2 else np.zeros((48, 48), np.uint8))
    return root


@pytest.fixture
def plain_source(tmp_path: Path) -> Path:
    return make_plain(tmp_path / "plain")


def command_env() -> dict[str, str]:
    """The environment of a test's commands: this interpreter's ``dvc`` and ``python`` first on PATH."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", DVC_NO_ANALYTICS="1")


def _run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=command_env(), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


SOURCE = "data/dvc.yaml:source"
ALWAYS_RUN = {SOURCE}


def ran(result: subprocess.CompletedProcess) -> set[str]:
    """The stages a ``dvc repro`` ran, less the always-run ``source`` stage."""
    return set(re.findall(r"Running stage '([^']+)'", result.stdout)) - ALWAYS_RUN


def changed(status: subprocess.CompletedProcess) -> set[str]:
    """The stages ``dvc status`` names, less the ``source`` stage it always names."""
    return set(re.findall(r"^(\S+):$", status.stdout, re.MULTILINE)) - ALWAYS_RUN


TINY_PIPELINE = {
    "data.synthetic.count": 30,
    "data.synthetic.tile_size": 32,
    "preprocess.image_size": 32,
    "models.unet.base_width": 4,
    "models.unet.depth": 2,
    "train.epochs": 2,
    "train.batch_size": 4,
    "evaluate.worst_overlays": 2,
    "report.bootstrap_samples": 200,
}


class DvcRepo:
    """A git + DVC repository: a throw-away copy of the project's pipeline, or a clone of one."""

    def __init__(self, root: Path, create: bool = True):
        self.root = root
        if create:
            self._create()

    def _create(self) -> None:
        root = self.root
        for name in ("dvc.yaml", "params.yaml", ".gitignore", "data/dvc.yaml"):
            (root / name).parent.mkdir(exist_ok=True)
            shutil.copy(REPO / name, root / name)
        shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        (root / "metrics").mkdir(exist_ok=True)
        self.run("git", "init", "-q")
        self.run("git", "config", "user.email", "test@example.com")
        self.run("git", "config", "user.name", "test")
        self.run("dvc", "init", "-q")
        shutil.copy(REPO / ".dvc" / "config", root / ".dvc" / "config")
        shutil.copy(REPO / ".dvcignore", root / ".dvcignore")

    def copy_to(self, folder: Path) -> "DvcRepo":
        """A copy of this repository (its git history, DVC cache and outputs) in ``folder``."""
        shutil.copytree(self.root, folder, symlinks=True, dirs_exist_ok=True)
        return DvcRepo(folder, create=False)

    def set_params(self, **overrides) -> None:
        raw = override(yaml.safe_load((self.root / "params.yaml").read_text()), overrides)
        (self.root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return _run(list(cmd), self.root, check)

    def commit(self, message: str = "snapshot") -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "-m", message)


def teammate_clone(origin: DvcRepo, folder: Path, remote: str, settings: dict[str, str]) -> DvcRepo:
    """A fresh clone of ``origin`` in ``folder`` with ``remote`` as its default DVC remote and
    ``settings`` on it, all in ``.dvc/config.local``, as a teammate sets them."""
    subprocess.run(["git", "clone", "-q", str(origin.root), str(folder)], check=True)
    clone = DvcRepo(folder, create=False)
    clone.run("dvc", "remote", "add", "--local", "--default", "team", remote)
    for key, value in settings.items():
        clone.run("dvc", "remote", "modify", "--local", "team", key, value)
    return clone


@pytest.fixture(scope="session")
def tiny_reproduced(tmp_path_factory) -> tuple[Path, str]:
    """The tiny three-loss pipeline (``TINY_PIPELINE``), committed, reproduced and committed
    again, and the output of that ``dvc repro``; built once per test run and shared by the
    xdist workers (the first to need it builds it under a lock while the other waits). Test
    files start from a copy of it (``copy_of_tiny_reproduced``), never from it."""
    basetemp = tmp_path_factory.getbasetemp()
    shared = basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp
    template, output = shared / "tiny-reproduced", shared / "tiny-reproduced.out"
    with FileLock(str(shared / "tiny-reproduced.lock")):
        if not output.exists():
            shutil.rmtree(template, ignore_errors=True)  # left half-built by a worker whose build failed
            template.mkdir()
            repo = DvcRepo(template)
            repo.set_params(**TINY_PIPELINE)
            repo.commit("tiny pipeline")
            first = repo.run("dvc", "repro")
            repo.commit("reproduced")
            output.write_text(first.stdout)
    return template, output.read_text()


def copy_of_tiny_reproduced(tiny_reproduced: tuple[Path, str], folder: Path) -> tuple[DvcRepo, subprocess.CompletedProcess]:
    """A copy of the reproduced tiny pipeline in ``folder`` (its git history, DVC cache and
    outputs), and the ``dvc repro`` that reproduced it (its output)."""
    template, output = tiny_reproduced
    return DvcRepo(template, create=False).copy_to(folder), subprocess.CompletedProcess(["dvc", "repro"], 0, output, "")


@pytest.fixture
def dvc_repo(tmp_path: Path) -> DvcRepo:
    root = tmp_path / "project"
    root.mkdir()
    return DvcRepo(root)


def unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"remote server unavailable in CI: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A real OpenSSH server on 127.0.0.1 with key auth; yields (port, user, private key)."""
    binary = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(binary).exists():
        unavailable("openssh-server is not installed (sshd not found)")
    root = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True)
    shutil.copy(root / "client_key.pub", root / "authorized_keys")
    port = free_port()
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\nAuthorizedKeysFile {root / 'authorized_keys'}\n"
        f"PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nUsePAM no\nStrictModes no\n"
        f"PermitRootLogin prohibit-password\nPidFile {root / 'sshd.pid'}\nSubsystem sftp internal-sftp\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)
    process = subprocess.Popen([binary, "-D", "-e", "-f", str(root / "sshd_config")], stderr=subprocess.PIPE, text=True)
    if not wait_for_port(port, process):
        process.kill()
        unavailable(f"sshd did not start: {process.stderr.read()[-500:] if process.stderr else ''}")
    yield port, getpass.getuser(), root / "client_key"
    process.terminate()
    process.wait(timeout=10)


@contextlib.contextmanager
def running_server(*args: str, cwd: Path | None = None, env: dict | None = None):
    """``defectseg serve ARGS`` on a free port of 127.0.0.1, a real uvicorn server: yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "defectseg", "serve", *args, "--port", str(port)],
        cwd=cwd, env=env or command_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        if not wait_for_port(port, process, seconds=60):
            process.kill()
            raise AssertionError(f"defectseg serve did not start: {process.communicate()[1]}")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="session")
def shipped_model(tiny_reproduced, tmp_path_factory) -> Path:
    """A copy of the tiny pipeline's shipped model folder (``release/``: weights, decision, card)."""
    template, _ = tiny_reproduced
    folder = tmp_path_factory.mktemp("shipped") / "release"
    shutil.copytree(template / "release", folder)
    return folder
