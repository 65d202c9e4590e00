"""Training batches: each epoch's images, shuffled and sharded, fed by worker processes.

An epoch holds every defect tile once or, with ``class_balance``, draws spread more evenly
over the defect classes (as many in all), plus a fresh share of the defect-free tiles, some
of which get a train tile's defect pasted in (``copy_paste``: a share per class).

The sampler yields (index, seed, source) triples (source: the train tile whose defect is
pasted into this one, or -1), and the dataset seeds each image's augmentation
with its pair, a function of the run's seed, the epoch and the image only. So the batches
are the same whatever the number of worker processes (``train.loader_workers``), and a
resumed run sees what an uninterrupted one saw. The sampler runs in the main process and
is told each epoch before its pass, so the workers persist from epoch to epoch.
"""

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from defectseg.data.dataset import Split
from defectseg.errors import DataError
from defectseg.foundation.threads import thread_share

MAX_AUTO_WORKERS = 8


@dataclass(frozen=True)
class EpochPlan:
    """How an epoch draws its tiles (``train``'s ``free_sample_share``, ``class_balance`` and ``copy_paste.shares``)."""

    free_share: float = 1.0
    class_balance: float = 0.0
    paste_shares: dict[str, float] = field(default_factory=dict)


def balanced_draws(defective: np.ndarray, classes: np.ndarray, balance: float, generator: torch.Generator) -> np.ndarray:
    """As many draws from the ``defective`` tiles as there are, spread over their classes in
    proportion to count**(1 - balance): 0 draws each tile once, 1 every class alike. A class
    drawn more often than it has tiles takes whole shuffled passes over them, then part of one."""
    names, counts = np.unique(classes[defective], return_counts=True)
    exact = len(defective) * counts.astype(float) ** (1 - balance) / (counts.astype(float) ** (1 - balance)).sum()
    quotas = np.floor(exact).astype(int)
    quotas[np.argsort(quotas - exact, kind="stable")[: len(defective) - quotas.sum()]] += 1
    draws = []
    for name, quota in zip(names, quotas):
        members = defective[classes[defective] == name]
        passes = [members[torch.randperm(len(members), generator=generator).numpy()] for _ in range(-(-quota // len(members)))]
        draws.append(np.concatenate(passes)[:quota] if passes else members[:0])
    return np.concatenate(draws)


def epoch_items(split: Split, plan: EpochPlan, generator: torch.Generator) -> list[tuple[int, int]]:
    """The train tiles of one epoch as (index, paste source) pairs, sorted: the defect tiles (or
    their class-balanced draws) and a random share of the defect-free ones, a share of which per
    class get a random train tile of that class as the source of a pasted defect (else -1)."""
    has_defect = split.has_defect()
    defective, free = np.flatnonzero(has_defect), np.flatnonzero(~has_defect)
    keep = round(len(free) * plan.free_share)
    chosen = free[torch.randperm(len(free), generator=generator)[:keep].numpy()] if keep < len(free) else free
    if plan.class_balance:
        defective = balanced_draws(defective, split.classes, plan.class_balance, generator)
    sources = np.full(len(chosen), -1)
    if plan.paste_shares:
        receivers = torch.randperm(len(chosen), generator=generator).numpy()
        start = 0
        for name, share in sorted(plan.paste_shares.items()):
            members = np.flatnonzero(has_defect & (split.classes == name))
            if not len(members):
                raise DataError(Path("params.yaml"), f"train.copy_paste.shares names class {name!r}, which has no defect tile in this run's train part")
            count = round(len(chosen) * share)
            sources[receivers[start : start + count]] = members[torch.randint(len(members), (count,), generator=generator).numpy()]
            start += count
    return sorted([(int(i), -1) for i in defective] + [(int(i), int(s)) for i, s in zip(chosen, sources)])


def sample_seed(epoch_seed: int, index: int, draw: int = 0) -> int:
    """The augmentation seed of image ``index`` in the epoch seeded ``epoch_seed`` (its ``draw``-th draw there)."""
    return (epoch_seed * 1_000_003 + index + draw * 7_919_993) % 2**32


class EpochSampler(Sampler):
    """One process's share of an epoch's images in a seeded random order, as (index, seed, source) triples.

    ``set_epoch`` picks the epoch; its images are ``epoch_items``, shuffled with the
    same seed on every process and dealt out round-robin, the remainder dropped so every
    process takes the same number of steps.
    """

    def __init__(self, split: Split, plan: EpochPlan, rank: int = 0, processes: int = 1):
        self.split, self.plan, self.rank, self.processes = split, plan, rank, processes
        self.epoch_size = len(epoch_items(split, plan, torch.Generator()))
        self.epoch_seed = 0

    def set_epoch(self, epoch_seed: int) -> None:
        self.epoch_seed = epoch_seed

    def __len__(self) -> int:
        return self.epoch_size // self.processes

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.epoch_seed)
        chosen = epoch_items(self.split, self.plan, generator)
        draws, seen = [], {}
        for index, _ in chosen:
            draws.append(seen.get(index, 0))
            seen[index] = draws[-1] + 1
        order = torch.randperm(len(chosen), generator=generator)[: len(self) * self.processes]
        for position in order[self.rank :: self.processes].tolist():
            index, source = chosen[position]
            yield index, sample_seed(self.epoch_seed, index, draws[position]), source


def loader_workers(setting: str | int, device: torch.device) -> int:
    """Worker processes for ``train.loader_workers``: ``auto`` is none on a CPU (the workers
    would take cores from the model's own threads) and half this process's share of the
    cores, up to 8, beside a GPU."""
    if setting != "auto":
        return int(setting)
    return 0 if device.type == "cpu" else min(MAX_AUTO_WORKERS, max(1, thread_share() // 2))


def _one_thread_worker(_worker_id: int) -> None:
    cv2.setNumThreads(1)  # torch sets one thread in workers itself; OpenCV does not


def build_loader(dataset: Dataset, sampler: EpochSampler, batch_size: int, workers: int, device: torch.device) -> DataLoader:
    """Batches of ``batch_size`` (the last partial one dropped), fed by ``workers``
    persistent worker processes (none: in this process), pinned for a GPU.

    Workers are spawned, not forked: a child forked from a process whose OpenMP and
    OpenCV thread pools have run can deadlock in them (seen here on the first batch)."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        prefetch_factor=2 if workers else None,
        pin_memory=device.type == "cuda",
        worker_init_fn=_one_thread_worker if workers else None,
        multiprocessing_context="spawn" if workers else None,
    )
