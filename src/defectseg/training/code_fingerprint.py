"""Which package modules a script runs, and a fingerprint of their code.

A stage's results depend on the code it imports, directly or not: its *import closure*.
``dvc.yaml`` lists that closure as each stage's deps (``tests/test_stage_deps.py`` checks
it with ``import_closure``), and training stamps its resume state with
``module_hashes`` of the same closure, so an interrupted run is never continued by
different code. Modules that cannot change a result are left out: error types, atomic
writes and the stage wrapper.
"""

import ast
import hashlib
from pathlib import Path

PACKAGE = "defectseg"
# the folder that holds the ``defectseg`` package: ``src/`` in a checkout
SOURCE_ROOT = Path(__file__).resolve().parents[2]
EXEMPT = {"__init__.py", "errors.py", "atomic.py", "stage.py"}


def imported_modules(path: Path, source_root: Path = SOURCE_ROOT) -> set[Path]:
    """The package modules (paths under ``source_root``) that the Python file ``path`` imports directly."""
    found = set()
    for node in ast.walk(ast.parse(Path(path).read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == PACKAGE:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE]
        for name in names:
            module = source_root.joinpath(*name.split(".")).with_suffix(".py")
            if module.is_file():
                found.add(module)
    return found


def import_closure(script: Path, source_root: Path = SOURCE_ROOT) -> set[Path]:
    """Every package module ``script`` imports, directly or through other modules, less the exempt ones."""
    seen, todo = set(), [Path(script)]
    while todo:
        for module in imported_modules(todo.pop(), source_root):
            if module not in seen:
                seen.add(module)
                todo.append(module)
    return {m for m in seen if m.name not in EXEMPT}


def module_hashes(entry: Path, source_root: Path = SOURCE_ROOT) -> dict[str, str]:
    """SHA-256 of ``entry`` and of every module in its import closure, keyed by path
    relative to ``source_root`` (``defectseg/losses.py``)."""
    entry = Path(entry).resolve()
    files = {entry, *import_closure(entry, source_root)}
    return {path.relative_to(source_root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(files)}


def changed_modules(saved: dict[str, str], current: dict[str, str]) -> list[str]:
    """The names whose hash differs between two ``module_hashes`` results, or that only one has."""
    return sorted(name for name in saved.keys() | current.keys() if saved.get(name) != current.get(name))
