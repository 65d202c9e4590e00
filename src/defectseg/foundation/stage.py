"""Entry-point wrapper for stage scripts: expected failures become one clear line, and a stage
that DVC runs records nothing under params or code it did not use.

DVC reads a stage's dependencies *after* its command ends (treeverse/dvc#11058): a param or a
module edited while a long stage runs would be written to ``dvc.lock`` as if the run had used
it. So ``run_stage`` snapshots, before the stage's work, the params files and every Python
file that ``dvc.yaml`` names as a dep, and compares when the work ends. Only if something
changed does it ask DVC which of those this stage tracks (its own params keys, its own code
deps); a change to one of them fails the stage with one line naming what changed and what the
run used, so DVC records nothing and the next ``dvc repro`` runs it again. A code file is
also taken as changed when it was written after the process started: the stage imported its
modules before the snapshot.

Run outside DVC (no ``DVC_STAGE`` in the environment), a stage records nothing, so nothing is checked.

A machine that only assembles other machines' runs (``fanout.assemble``) names, in
``ONLY_FROM_CACHE``, the stages it must restore from DVC's run-cache; DVC runs a stage's
command only when it found no run to restore, so such a stage fails at once, naming itself.
"""

import hashlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import yaml

from defectseg.errors import DefectsegError

PARAMS_FILE = "params.yaml"
# comma-separated stage names (train, evaluate) that this machine must restore, never run
ONLY_FROM_CACHE = "DEFECTSEG_ONLY_FROM_CACHE"
# a file written this long after the process started is an edit during the run, not the one that launched it
START_MARGIN_SECONDS = 0.1


@dataclass(frozen=True)
class StageInputs:
    """What a stage could depend on, as it stood: params files' text, code files' SHA-256 and modification times."""

    params_text: dict[str, str]
    code_hashes: dict[str, str]
    code_mtimes: dict[str, float]

    @classmethod
    def take(cls, root: Path) -> "StageInputs":
        params_files, code_files = _declared_files(root)
        params_text = {name: _read_text(root / name) for name in params_files}
        hashes = {name: _sha256(root / name) for name in code_files}
        mtimes = {name: (root / name).stat().st_mtime if (root / name).exists() else 0.0 for name in code_files}
        return cls(params_text, hashes, mtimes)


def _read_text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


def _declared_files(root: Path) -> tuple[set[str], set[str]]:
    """The params files and the Python files that any stage of ``root/dvc.yaml`` or of a
    ``dvc.yaml`` one folder down names (paths relative to ``root``: those stages run there)."""
    stages = [stage for path in [root / "dvc.yaml", *root.glob("*/dvc.yaml")] for stage in (yaml.safe_load(_read_text(path)) or {}).get("stages", {}).values()]
    params_files, code_files = {PARAMS_FILE}, set()
    for stage in stages:
        for entry in stage.get("params", []):
            if isinstance(entry, dict):
                params_files.update(entry)
        for entry in stage.get("deps", []):
            name = entry if isinstance(entry, str) else next(iter(entry))
            if name.endswith(".py") and "${" not in name:
                code_files.add(name)
    return params_files, code_files


def _value(tree: object, dotted: str) -> object:
    """The value at a dotted key of a loaded YAML mapping, or None where it is absent."""
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def _leaves(tree: object, prefix: str) -> dict[str, object]:
    """A nested mapping as {dotted key: value} of its leaves."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    leaves = {}
    for key, value in tree.items():
        leaves.update(_leaves(value, f"{prefix}.{key}" if prefix else str(key)))
    return leaves


def _param_changes(before: str, now: str, keys: list[str], file: str) -> list[str]:
    """One phrase per tracked leaf param (under ``keys``; all of the file where empty) whose value differs."""
    old, new = yaml.safe_load(before) or {}, yaml.safe_load(now) or {}
    changes = []
    for key in keys or [""]:
        old_leaves = _leaves(_value(old, key) if key else old, key)
        new_leaves = _leaves(_value(new, key) if key else new, key)
        for leaf in sorted(old_leaves.keys() | new_leaves.keys()):
            if old_leaves.get(leaf) != new_leaves.get(leaf):
                changes.append(f"{leaf}: the run used {old_leaves.get(leaf)!r}, {file} now has {new_leaves.get(leaf)!r}")
    return changes


def changes_during_run(before: StageInputs, root: Path, addressing: str, started: float) -> list[str]:
    """What of the stage ``addressing`` tracks changed since ``before`` (or, for code, since ``started``)."""
    now = StageInputs.take(root)
    edited = {
        name
        for name, digest in now.code_hashes.items()
        if digest != before.code_hashes.get(name) or now.code_mtimes[name] > started + START_MARGIN_SECONDS
    }
    if now.params_text == before.params_text and not edited:
        return []
    from dvc.repo import Repo  # only when something changed: importing DVC costs a stage about half a second

    (stage,) = Repo().stage.collect(addressing)
    changes = []
    for dependency in stage.params:
        file = dependency.def_path
        changes += _param_changes(before.params_text.get(file, ""), _read_text(root / file), list(dependency.params), file)
    for dependency in stage.deps:
        name = Path(dependency.def_path).as_posix()
        if name in edited:
            used = before.code_hashes.get(name, "")[:12]
            changes.append(f"{name} was edited after the run started (the run used SHA-256 {used}…)" if used else f"{name} was edited after the run started")
    return changes


def process_start_time() -> float:
    """When this process started, as a ``time.time()`` value, to the kernel's clock tick (10 ms).

    ``psutil.Process().create_time()`` adds the boot time that ``/proc/stat`` gives in whole
    seconds, so it reads up to a second early: files that ``dvc exp run --temp`` wrote into its
    workspace just before starting the stage then looked written after the start. Here the
    process's age comes from the boot-time clock that its start tick counts on."""
    try:
        fields = Path("/proc/self/stat").read_text().rpartition(")")[2].split()
    except OSError:  # no procfs (macOS): psutil's reading, early by up to a second
        return psutil.Process().create_time()
    started_after_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - started_after_boot)


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; print a one-line cause and exit non-zero on a user error, or when a
    param or module the stage tracks changed while it ran (so DVC records nothing).

    Unexpected exceptions still raise with their traceback: they are bugs to report.
    """
    addressing, root = os.environ.get("DVC_STAGE"), Path(".")  # DVC runs a stage in the folder of its dvc.yaml
    before = StageInputs.take(root) if addressing else None
    try:
        if addressing and addressing.partition("@")[0] in os.environ.get(ONLY_FROM_CACHE, "").split(","):
            raise DefectsegError(
                f"{addressing}: no run of it in DVC's run-cache here or on the default remote, and this machine only assembles: "
                "run it on a worker (`defectseg worker --slice K/N`), then assemble again"
            )
        main()
        if before is not None:
            changes = changes_during_run(before, root, addressing, process_start_time())
            if changes:
                raise DefectsegError(f"{addressing}: changed while it ran, so nothing is recorded (run `dvc repro` again): {'; '.join(changes)}")
    except DefectsegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
