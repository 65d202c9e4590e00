"""The package's layout shows its architecture (docs/architecture.md): one folder a layer, checked
with import-linter's ``layers`` contract, one idea a module, imports absolute and visible."""

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import REPO

LINT = [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"]
PACKAGE = REPO / "src" / "defectseg"
# the modules that stay at the package's top: the entry point and the error types every layer raises
TOP_MODULES = {"__init__", "__main__", "errors"}
MAX_LINES = 350


def layers() -> list[str]:
    (contract,) = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    return contract["layers"]


def lint(package_parent: Path, config: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(package_parent))
    return subprocess.run([*LINT, "--config", str(config)], cwd=package_parent, env=env, capture_output=True, text=True)


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_module_imports_a_layer_above_its_own():
    result = lint(REPO / "src", REPO / "pyproject.toml")
    assert result.returncode == 0 and "1 kept, 0 broken" in result.stdout, result.stdout + result.stderr


def test_every_folder_is_a_layer_and_only_the_entry_point_and_errors_stay_at_the_top():
    placed = {name.strip() for layer in layers() for name in layer.split(":")}
    folders = {f"defectseg.{p.name}" for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top <= TOP_MODULES
    assert placed == folders | {f"defectseg.{name}" for name in top - {"__init__"}}


def test_no_module_is_over_the_line_limit():
    long = {str(p.relative_to(PACKAGE)): n for p in modules() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_imports_are_absolute_and_subpackages_re_export_nothing():
    """dvc.yaml's deps and the stage guard read imports: a relative import or a re-export in an
    ``__init__`` would hide which module a stage really runs."""
    for path in [*modules(), *(REPO / "src" / "stages").glob("*.py")]:
        tree = ast.parse(path.read_text())
        relative = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]
        assert relative == [], f"{path}: relative imports at lines {relative}"
        if path.name == "__init__.py":
            assert not any(isinstance(node, (ast.Import, ast.ImportFrom)) for node in tree.body), f"{path} imports"


def test_an_upward_import_breaks_the_contract(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "defectseg", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    manifest = tmp_path / "defectseg" / "data" / "manifest.py"
    manifest.write_text(manifest.read_text() + "\nfrom defectseg.training.loop import fit  # noqa: E402\n")
    result = lint(tmp_path, tmp_path / "pyproject.toml")
    assert result.returncode == 1 and "defectseg.data.manifest -> defectseg.training.loop" in result.stdout, result.stdout + result.stderr
