"""Every package module a stage script imports, directly or not, is a dep of that stage in dvc.yaml.

Otherwise a code change leaves `dvc repro` calling stale results up to date. Modules
that cannot change a stage's results are exempt: error types, atomic writes and the
stage wrapper (argument parsing, one-line errors).
"""

import copy
from pathlib import Path

import grimp
import yaml

from defectseg.training.code_fingerprint import EXEMPT, changed_modules, module_hashes
from defectseg.training.code_fingerprint import import_closure as package_closure

REPO = Path(__file__).resolve().parents[1]
PACKAGE = Path("src/defectseg")


def import_closure(script: Path) -> set[Path]:
    """The package modules (repo-relative paths) ``script`` imports, directly or not, less the exempt ones."""
    return {m.relative_to(REPO) for m in package_closure(REPO / script, REPO / "src")}


def package_deps(stage: dict) -> set[Path]:
    """The package modules a stage lists among its ``deps``."""
    deps = {Path(d if isinstance(d, str) else next(iter(d))) for d in stage.get("deps", [])}
    return {d for d in deps if d.parts[:2] == PACKAGE.parts}


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
    return {name: stage for path in ("dvc.yaml", "data/dvc.yaml") for name, stage in yaml.safe_load((REPO / path).read_text())["stages"].items()}


def test_every_stage_depends_on_every_module_it_imports():
    assert missing_deps(pipeline()) == {}


def test_no_stage_depends_on_a_module_it_does_not_import():
    """A dep the stage does not run re-runs it for nothing (an edit to the report's schema retraining every model)."""
    excess = {}
    for name, stage in pipeline().items():
        script = next(Path(word) for word in stage["cmd"].split() if word.endswith(".py"))
        extra = sorted(str(m) for m in package_deps(stage) - import_closure(script))
        if extra:
            excess[name] = extra
    assert excess == {}


def test_train_does_not_depend_on_the_report_evaluate_or_loading_saved_models():
    train = package_deps(pipeline()["train"])
    for module in ("config/report.py", "config/evaluate.py", "config/params.py", "models/saved_model.py", "models/ensemble.py", "models/inference.py", "measures/decision.py"):
        assert PACKAGE / module not in train


def test_a_removed_dep_is_reported():
    stages = copy.deepcopy(pipeline())
    stages["evaluate"]["deps"].remove("src/defectseg/measures/decision.py")
    assert missing_deps(stages) == {"evaluate": ["src/defectseg/measures/decision.py"]}


def test_closure_follows_indirect_imports():
    closure = import_closure(Path("src/stages/evaluate.py"))
    assert PACKAGE / "models" / "factory.py" in closure
    assert PACKAGE / "errors.py" not in closure


def test_no_dep_lists_a_module_that_does_not_exist():
    for name, stage in pipeline().items():
        for dep in stage.get("deps", []):
            dep = dep if isinstance(dep, str) else next(iter(dep))
            if dep.startswith("src/"):
                assert (REPO / dep).exists(), f"{name}: {dep}"


def test_training_code_fingerprint_covers_every_module_the_train_stage_runs():
    hashes = module_hashes(REPO / PACKAGE / "training" / "train_run.py", REPO / "src")
    stage_modules = {m.relative_to("src").as_posix() for m in import_closure(Path("src/stages/train.py"))}
    assert stage_modules <= set(hashes) and "defectseg/training/losses.py" in hashes


def test_changed_modules_names_edited_added_and_removed_modules():
    saved = {"defectseg/a.py": "1", "defectseg/b.py": "2", "defectseg/gone.py": "3"}
    current = {"defectseg/a.py": "1", "defectseg/b.py": "9", "defectseg/new.py": "4"}
    assert changed_modules(saved, current) == ["defectseg/b.py", "defectseg/gone.py", "defectseg/new.py"]
    assert changed_modules(saved, saved) == []


def test_the_hand_closure_matches_grimps_for_every_package_module():
    """``import_closure`` stays stdlib-only (it also reads the stage scripts, which live outside the
    package, and runs on the bare GPU machine); grimp, import-linter's graph, must agree with it."""
    source = REPO / "src"
    graph = grimp.build_graph("defectseg", cache_dir=None)

    def file_of(module: str) -> Path:
        path = source.joinpath(*module.split("."))
        return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")

    for module in graph.modules:
        by_grimp = {file_of(m) for m in graph.find_upstream_modules(module)}
        assert package_closure(file_of(module), source) == {f for f in by_grimp if f.name not in EXEMPT}, module
