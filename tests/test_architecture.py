"""The package's layers (docs/architecture.md), checked with import-linter's ``layers`` contract."""

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import REPO

LINT = [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"]


def layers() -> list[str]:
    (contract,) = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    return contract["layers"]


def lint(package_parent: Path, config: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(package_parent))
    return subprocess.run([*LINT, "--config", str(config)], cwd=package_parent, env=env, capture_output=True, text=True)


def test_no_module_imports_a_layer_above_its_own():
    result = lint(REPO / "src", REPO / "pyproject.toml")
    assert result.returncode == 0 and "1 kept, 0 broken" in result.stdout, result.stdout + result.stderr


def test_every_package_module_has_a_layer():
    placed = {name.strip() for layer in layers() for name in layer.split(":")}
    modules = {f"defectseg.{p.stem}" for p in (REPO / "src" / "defectseg").glob("*.py") if p.stem != "__init__"}
    assert modules == placed


def test_an_upward_import_breaks_the_contract(tmp_path):
    shutil.copytree(REPO / "src" / "defectseg", tmp_path / "defectseg", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    manifest = tmp_path / "defectseg" / "manifest.py"
    manifest.write_text(manifest.read_text() + "\nfrom defectseg.training import fit  # noqa: E402\n")
    result = lint(tmp_path, tmp_path / "pyproject.toml")
    assert result.returncode == 1 and "defectseg.manifest -> defectseg.training" in result.stdout, result.stdout + result.stderr
