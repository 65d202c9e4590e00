"""How many CPU threads a training or evaluation process may use: its share of the cores.

Alone, a process takes every core it may run on. When DVC runs several stages at once
(``dvc exp run -j N``, parallel queue workers, or stages started by hand side by side),
each would otherwise take every core for torch and again for OpenCV, and on a small
machine they then run many times slower than one after the other. So every process
holds a *job slot* (a file named by its process id in a folder per user) while it runs,
and evaluation sets torch's and OpenCV's thread counts to the cores divided by the live
slots, as jobs come and go.

A training run's floating-point results depend on its thread count (a sum split over two
threads rounds differently from one), so training fixes its count once, at its start
(``fix_threads``): ``train.threads`` pins it, so the same params give the same model
whatever else runs; ``auto`` takes the share of the cores at the start instead, faster
beside other jobs, but then the model depends on what ran beside it.
"""

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import torch


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and ``taskset`` set)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def slots_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"defectseg-jobs-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_jobs(folder: Path | None = None) -> int:
    """The job slots whose process still runs (a slot left by a killed process is removed)."""
    folder = folder or slots_dir()
    count = 0
    for slot in folder.glob("*.job") if folder.is_dir() else []:
        if slot.stem.isdigit() and _alive(int(slot.stem)):
            count += 1
        else:
            slot.unlink(missing_ok=True)
    return count


@contextlib.contextmanager
def job_slot(folder: Path | None = None) -> Iterator[None]:
    """Hold a job slot while the block runs."""
    folder = folder or slots_dir()
    folder.mkdir(parents=True, exist_ok=True)
    slot = folder / f"{os.getpid()}.job"
    slot.touch()
    try:
        yield
    finally:
        slot.unlink(missing_ok=True)


def thread_share(folder: Path | None = None) -> int:
    """This process's share of the usable cores among the live jobs (at least one thread)."""
    return max(1, usable_cores() // max(1, live_jobs(folder)))


def budget_threads(folder: Path | None = None) -> int:
    """Set torch's and OpenCV's thread counts to ``thread_share``; return it."""
    threads = thread_share(folder)
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    return threads


def fix_threads(setting: str | int, folder: Path | None = None) -> int:
    """Set torch's and OpenCV's thread counts for a whole training run: ``setting`` threads,
    or with ``auto`` this process's ``thread_share`` now; return the count."""
    threads = thread_share(folder) if setting == "auto" else int(setting)
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    return threads
