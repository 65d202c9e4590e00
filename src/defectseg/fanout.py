"""A comparison fanned out over machines through DVC's run-cache: workers train, one machine assembles.

Every arm of a comparison is a ``train@RUN`` stage and its ``evaluate@RUN``. A *worker*
(``defectseg worker --slice K/N``) reproduces the K-th of N interleaved slices of the arms
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
from defectseg.stage import ONLY_FROM_CACHE

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

