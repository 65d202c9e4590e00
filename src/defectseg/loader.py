"""Training batches: each epoch's images, shuffled and sharded, fed by worker processes.

The sampler yields (index, seed) pairs, and the dataset seeds each image's augmentation
with its pair, a function of the run's seed, the epoch and the image only. So the batches
are the same whatever the number of worker processes (``train.loader_workers``), and a
resumed run sees what an uninterrupted one saw. The sampler runs in the main process and
is told each epoch before its pass, so the workers persist from epoch to epoch.
"""

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from defectseg.dataset import Split
from defectseg.threads import thread_share

MAX_AUTO_WORKERS = 8


def epoch_indices(split: Split, free_share: float, generator: torch.Generator) -> list[int]:
    """The train images of one epoch: every image with a defect, and a random share of the others."""
    has_defect = split.has_defect()
    defective, free = np.flatnonzero(has_defect), np.flatnonzero(~has_defect)
    keep = round(len(free) * free_share)
    chosen = free[torch.randperm(len(free), generator=generator)[:keep].numpy()] if keep < len(free) else free
    return sorted(np.concatenate([defective, chosen]).tolist())


def sample_seed(epoch_seed: int, index: int) -> int:
    """The augmentation seed of image ``index`` in the epoch seeded ``epoch_seed``."""
    return (epoch_seed * 1_000_003 + index) % 2**32


class EpochSampler(Sampler):
    """One process's share of an epoch's images in a seeded random order, as (index, seed) pairs.

    ``set_epoch`` picks the epoch; its images are ``epoch_indices``, shuffled with the
    same seed on every process and dealt out round-robin, the remainder dropped so every
    process takes the same number of steps.
    """

    def __init__(self, split: Split, free_share: float, rank: int = 0, processes: int = 1):
        self.split, self.free_share, self.rank, self.processes = split, free_share, rank, processes
        self.epoch_size = len(epoch_indices(split, free_share, torch.Generator()))
        self.epoch_seed = 0

    def set_epoch(self, epoch_seed: int) -> None:
        self.epoch_seed = epoch_seed

    def __len__(self) -> int:
        return self.epoch_size // self.processes

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.epoch_seed)
        chosen = epoch_indices(self.split, self.free_share, generator)
        order = torch.randperm(len(chosen), generator=generator)[: len(self) * self.processes]
        for position in order[self.rank :: self.processes].tolist():
            yield chosen[position], sample_seed(self.epoch_seed, chosen[position])


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
