"""Every package module a stage script imports, directly or not, is a dep of that stage in dvc.yaml.

Otherwise a code change leaves `dvc repro` calling stale results up to date. Modules
that cannot change a stage's results are exempt: error types, atomic writes and the
stage wrapper (argument parsing, one-line errors).
"""

import ast
import copy
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGE = Path("src/defectseg")
EXEMPT = {"__init__.py", "errors.py", "atomic.py", "stage.py"}


def imported_modules(path: Path) -> set[Path]:
    """The package modules (repo-relative paths) that ``path`` imports directly."""
    found = set()
    for node in ast.walk(ast.parse((REPO / path).read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("defectseg"):
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if alias.name.startswith("defectseg")]
        for name in names:
            module = Path("src", *name.split(".")).with_suffix(".py")
            if (REPO / module).is_file():
                found.add(module)
    return found


def import_closure(script: Path) -> set[Path]:
    """Every package module ``script`` imports, directly or through other modules, less the exempt ones."""
    seen, todo = set(), [script]
    while todo:
        for module in imported_modules(todo.pop()):
            if module not in seen:
                seen.add(module)
                todo.append(module)
    return {m for m in seen if m.name not in EXEMPT}


def missing_deps(stages: dict) -> dict[str, list[str]]:
    """Per stage, the imported package modules its ``deps`` do not list."""
    missing = {}
    for name, stage in stages.items():
        script = next(Path(word) for word in stage["cmd"].split() if word.endswith(".py"))
        deps = {Path(d if isinstance(d, str) else next(iter(d))) for d in stage.get("deps", [])}
        lacking = sorted(str(m) for m in import_closure(script) - deps)
        if lacking:
            missing[name] = lacking
    return missing


def pipeline() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_every_stage_depends_on_every_module_it_imports():
    assert missing_deps(pipeline()) == {}


def test_a_removed_dep_is_reported():
    stages = copy.deepcopy(pipeline())
    stages["evaluate"]["deps"].remove("src/defectseg/decision.py")
    assert missing_deps(stages) == {"evaluate": ["src/defectseg/decision.py"]}


def test_closure_follows_indirect_imports():
    closure = import_closure(Path("src/stages/evaluate.py"))
    assert PACKAGE / "models.py" in closure
    assert PACKAGE / "errors.py" not in closure


def test_no_dep_lists_a_module_that_does_not_exist():
    for name, stage in pipeline().items():
        for dep in stage.get("deps", []):
            dep = dep if isinstance(dep, str) else next(iter(dep))
            if dep.startswith("src/"):
                assert (REPO / dep).exists(), f"{name}: {dep}"
