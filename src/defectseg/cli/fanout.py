"""A comparison fanned out over machines through DVC's run-cache: workers train, one machine assembles.

Every arm of a comparison is a ``train@RUN`` stage and its ``evaluate@RUN``. A *worker*
(``defectseg worker --slice K/N``, or with no ``--slice`` the index a scheduler gives it:
``scheduler_slice``) reproduces the K-th of N interleaved slices of the arms
(with whatever they depend on: source, prepare, preprocess), restoring any arm another
machine already pushed instead of training it, then pushes those stages' outputs and its
run-cache entries to the default remote. The machine that *assembles* (``defectseg assemble``)
runs ``dvc repro --pull``: every train and evaluate stage is restored from the run-cache
("cached - skipping run") and only the report runs. If an arm has no run on the remote, the
stage wrapper refuses to train it there (``stage.ONLY_FROM_CACHE``) and names it, so an
assembly never quietly trains on one machine what was meant for many.

This works because identical inputs give byte-identical outputs (no times or machine names
in any DVC-hashed file): a worker's run of a stage the committed ``dvc.lock`` already names
has the very outputs the lock names, so DVC finds them on the remote.
"""

import os
import subprocess

from defectseg.errors import DefectsegError
from defectseg.foundation.stage import ONLY_FROM_CACHE

ARM_STAGES = ("train", "evaluate")


def _dvc(*args: str, env: dict | None = None) -> None:
    """Run ``dvc ARGS`` with its output shown; a failure is one ``DefectsegError``."""
    print(f"$ dvc {' '.join(args)}", flush=True)
    if subprocess.run(["dvc", *args], env=env).returncode:
        raise DefectsegError(f"dvc {' '.join(args)} failed (its output is above)")


def arms() -> list[str]:
    """The comparison's arms, as the ``RUN`` part of its ``train@RUN`` stages, sorted."""
    listed = subprocess.run(["dvc", "stage", "list", "--name-only"], capture_output=True, text=True)
    if listed.returncode:
        raise DefectsegError(f"dvc stage list failed: {listed.stderr.strip()}")
    return sorted(name.removeprefix("train@") for name in listed.stdout.split() if name.startswith("train@"))


def parse_slice(text: str) -> tuple[int, int]:
    """``K/N`` (1 <= K <= N) as (K, N)."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise DefectsegError(f"--slice {text}: expected K/N, e.g. 1/2") from None
    if not 1 <= index <= count:
        raise DefectsegError(f"--slice {text}: K must be between 1 and N")
    return index, count


# Where a scheduler puts a worker's index: (name, index variable, count variable, first index).
# Kubernetes gives an Indexed Job's index only; its count comes from ``--count``.
SCHEDULERS = (
    ("SLURM job array", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", None),
    ("Kubernetes Indexed Job", "JOB_COMPLETION_INDEX", None, 0),
    ("GitLab CI parallel", "CI_NODE_INDEX", "CI_NODE_TOTAL", 1),
    ("CircleCI parallelism", "CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", 0),
    ("Buildkite parallelism", "BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", 0),
)


def _integer(environ: dict, name: str) -> int:
    try:
        return int(environ[name])
    except ValueError:
        raise DefectsegError(f"{name}={environ[name]!r}: expected an integer") from None


def scheduler_slice(environ: dict, count: int | None = None) -> tuple[int, int]:
    """This worker's (K, N) from the scheduler that started it, K counted from 1.

    A SLURM array may start at any index (``--array=0-3`` or ``1-4``) but must step by 1:
    K is ``SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN + 1``. ``count`` (``--count``) gives N
    where the scheduler does not (Kubernetes) and overrides it elsewhere."""
    found = [entry for entry in SCHEDULERS if entry[1] in environ]
    if not found:
        names = ", ".join(index for _, index, _, _ in SCHEDULERS)
        raise DefectsegError(f"no --slice given and no scheduler index set (looked for {names})")
    if len(found) > 1:
        raise DefectsegError(f"no --slice given and several scheduler indexes set ({', '.join(e[1] for e in found)}): give --slice")
    name, index_var, count_var, first = found[0]
    if first is None:
        if environ.get("SLURM_ARRAY_TASK_STEP", "1") != "1":
            raise DefectsegError(f"{name}: SLURM_ARRAY_TASK_STEP={environ['SLURM_ARRAY_TASK_STEP']}: submit the array with step 1 (--array=1-N)")
        first = _integer(environ, "SLURM_ARRAY_TASK_MIN") if "SLURM_ARRAY_TASK_MIN" in environ else 0
    if count is None:
        if count_var is None or count_var not in environ:
            raise DefectsegError(f"{name}: {index_var} is set but not how many workers there are: give --count N")
        count = _integer(environ, count_var)
    index = _integer(environ, index_var) - first + 1
    if not 1 <= index <= count:
        raise DefectsegError(f"{name}: {index_var}={environ[index_var]} is not one of {count} workers counted from {first}")
    return index, count


def slice_of(names: list[str], index: int, count: int) -> list[str]:
    """The ``index``-th of ``count`` interleaved slices of ``names`` (1-based): every count-th, from the index-th."""
    return names[index - 1 :: count]


def work(index: int, count: int) -> list[str]:
    """Reproduce this worker's slice of the arms and push their outputs and run-cache entries; return its arms."""
    mine = slice_of(arms(), index, count)
    if not mine:
        raise DefectsegError(f"slice {index}/{count} holds no arm: the comparison has {len(arms())}")
    targets = [f"{stage}@{arm}" for arm in mine for stage in ARM_STAGES]
    _dvc("repro", "--pull", *targets)
    _dvc("push", "--run-cache", "--with-deps", *targets)
    return mine


def assemble() -> None:
    """Reproduce the pipeline restoring every arm from the run-cache; an arm without a run fails, untrained."""
    _dvc("repro", "--pull", env=dict(os.environ, **{ONLY_FROM_CACHE: ",".join(ARM_STAGES)}))

