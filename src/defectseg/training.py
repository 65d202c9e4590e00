"""The training loop: fit one model with one loss and seed, resumable and deterministic.

Read it top to bottom: set-up, optional resume, then one loop over epochs that trains,
validates, logs to DVCLive, keeps the best model by val defect IoU, and saves the
last state after every epoch. Each epoch re-seeds every random source from
(seed, epoch), so a run resumed after epoch k continues exactly as an uninterrupted one.
"""

import copy
import hashlib
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from defectseg.augment import build_augment
from defectseg.checkpoint import load_checkpoint, save_checkpoint
from defectseg.dataset import Normalization, SegmentationDataset, Split
from defectseg.distributed import World, mean_over_processes
from defectseg.errors import DataError, DefectsegError
from defectseg.losses import LossFn
from defectseg.metrics import iou_by_threshold
from defectseg.models import build_model
from defectseg.params import TrainParams

CHECKPOINT_FORMAT = "defectseg-checkpoint-1"


class TrainingError(DefectsegError):
    """Training cannot go on (for example the loss became NaN)."""


@dataclass
class RunSpec:
    """Everything that determines a training run; its fingerprint decides whether to resume."""

    params: TrainParams
    loss_name: str
    loss_settings: dict
    seed: int
    data_fingerprint: str

    def fingerprint(self) -> str:
        blob = json.dumps(
            [self.params.model_dump(), self.loss_name, self.loss_settings, self.seed, self.data_fingerprint],
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()


def pick_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; CPU uses every core."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("train.device is cuda but no CUDA device is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise TrainingError("train.device is mps but MPS is not available")
    if name == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    return torch.device(name)


def seed_epoch(seed: int, epoch: int, augment, rank: int = 0) -> int:
    """Seed torch, numpy and the augmentation from (seed, epoch, rank); return the epoch seed.

    The returned seed is the same on every process, so all of them shuffle alike.
    """
    epoch_seed = seed * 100_003 + epoch
    torch.manual_seed(epoch_seed + rank)
    np.random.seed((epoch_seed + rank) % 2**32)
    augment.set_random_seed(epoch_seed + 7919 * rank)
    return epoch_seed


@dataclass(frozen=True)
class Compute:
    """Where and how tensors are computed: device, bf16 autocast, memory format."""

    device: torch.device
    bf16: bool = False
    channels_last: bool = False

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def put(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, non_blocking=True)
        return batch.contiguous(memory_format=torch.channels_last) if self.channels_last else batch

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model


def epoch_indices(split: Split, free_share: float, generator: torch.Generator) -> list[int]:
    """The train images of one epoch: every image with a defect, and a random share of the others."""
    has_defect = split.masks.reshape(len(split), -1).any(axis=1)
    defective, free = np.flatnonzero(has_defect), np.flatnonzero(~has_defect)
    keep = round(len(free) * free_share)
    chosen = free[torch.randperm(len(free), generator=generator)[:keep].numpy()] if keep < len(free) else free
    return sorted(np.concatenate([defective, chosen]).tolist())


def predict_logits(model: torch.nn.Module, images: torch.Tensor, compute: Compute, batch_size: int) -> torch.Tensor:
    """Float32 logits for normalized (N, 1, H, W) images, in eval mode, on the CPU."""
    model.eval()
    outputs = []
    with torch.no_grad(), compute.autocast():
        for start in range(0, len(images), batch_size):
            outputs.append(model(compute.put(images[start : start + batch_size])).float().cpu())
    return torch.cat(outputs) if outputs else torch.zeros((0, *images.shape[1:]))


VAL_THRESHOLD_STEPS = 99


def validate(model, split: Split, normalization: Normalization, loss_fn: LossFn, compute: Compute, batch_size: int) -> tuple[float, float]:
    """Val loss and global defect IoU at the best of 99 thresholds (as evaluate will choose)."""
    logits = predict_logits(model, normalization.apply(split.images), compute, batch_size)
    target = torch.from_numpy(split.masks).float().unsqueeze(1)
    loss = float(loss_fn(logits, target))
    _, ious = iou_by_threshold(torch.sigmoid(logits).squeeze(1).numpy(), split.masks > 0, VAL_THRESHOLD_STEPS)
    return loss, float(ious.max())


def _train_one_epoch(model, loader, optimizer, loss_fn, compute: Compute, epoch: int, world: World) -> float:
    model.train()
    total, seen = 0.0, 0
    bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, file=sys.stderr, disable=None if world.is_main else True)
    for images, masks in bar:
        images, masks = compute.put(images), masks.to(compute.device)
        with compute.autocast():
            logits = model(images)
        loss = loss_fn(logits.float(), masks)
        if not torch.isfinite(loss):
            raise TrainingError(f"epoch {epoch}: loss became {loss.item()}; lower train.lr or check the data")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(images)
        seen += len(images)
        bar.set_postfix(loss=f"{total / seen:.4f}")
    return mean_over_processes(total / seen, world)


def _optimizer(params: TrainParams, model) -> torch.optim.Optimizer:
    kind = torch.optim.AdamW if params.optimizer == "adamw" else torch.optim.Adam
    return kind(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)


def _schedule(params: TrainParams, optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    if params.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=params.epochs)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def _resume_state(path: Path, fingerprint: str) -> dict | None:
    """The saved state of an interrupted run with the same fingerprint, else None."""
    if not path.exists():
        return None
    state = load_checkpoint(path)
    if state.get("format") != CHECKPOINT_FORMAT or state.get("fingerprint") != fingerprint:
        print(f"{path}: from another configuration; starting afresh", file=sys.stderr)
        return None
    return state


def fit(spec: RunSpec, loss_fn: LossFn, train_split: Split, val_split: Split, last_path: Path, live, world: World = World()) -> dict:
    """Train as ``spec`` says; return the best weights, normalization and per-epoch history.

    ``last_path`` holds the resumable state, rewritten after every epoch. ``live`` is a
    DVCLive ``Live`` (None on processes other than rank 0); the history of a resumed run
    is logged again first, so its plots are whole. With several processes (``world``)
    each trains on its shard of every epoch with a share of the batch, and gradients
    are averaged by DistributedDataParallel; only rank 0 writes.
    """
    params = spec.params
    compute = Compute(pick_device(params.device), params.precision == "bf16", params.channels_last)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(spec.seed)
    model = compute.prepare(build_model(params.model, params.unet, params.downscale))
    net = DistributedDataParallel(model) if world.size > 1 else model
    optimizer = _optimizer(params, model)
    scheduler = _schedule(params, optimizer)
    augment = build_augment(params.augment)
    normalization = Normalization.of(train_split.images)
    dataset = SegmentationDataset(train_split, normalization, augment)
    epoch_size = len(epoch_indices(train_split, params.free_sample_share, torch.Generator()))
    if epoch_size < 2 * world.size:
        raise DataError(last_path, f"an epoch would hold {epoch_size} image(s); training needs at least 2 per process")
    batch_size = min(params.batch_size, epoch_size) // world.size
    if batch_size < 2:
        raise TrainingError(f"train.batch_size {params.batch_size} split over {world.size} processes leaves fewer than 2 images per step")
    fingerprint = spec.fingerprint()

    history: list[dict] = []
    best = {"val_iou": -math.inf, "epoch": 0, "weights": copy.deepcopy(model.state_dict())}
    resumed = _resume_state(last_path, fingerprint)
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        history = list(resumed["history"])
        best = {"val_iou": resumed["best_val_iou"], "epoch": resumed["best_epoch"], "weights": resumed["best_model"]}
        if world.is_main:
            print(f"resuming after epoch {len(history)} of {params.epochs}", file=sys.stderr)
    for row in history:
        _log_epoch(live, row)

    for epoch in range(len(history) + 1, params.epochs + 1):
        epoch_seed = seed_epoch(spec.seed, epoch, augment, world.rank)
        subset = Subset(dataset, epoch_indices(train_split, params.free_sample_share, torch.Generator().manual_seed(epoch_seed)))
        sampler = DistributedSampler(subset, num_replicas=world.size, rank=world.rank, shuffle=True, seed=epoch_seed, drop_last=True)
        loader = DataLoader(subset, batch_size=batch_size, sampler=sampler, drop_last=True, pin_memory=compute.device.type == "cuda")
        train_loss = _train_one_epoch(net, loader, optimizer, loss_fn, compute, epoch, world)
        val_loss, val_iou = validate(model, val_split, normalization, loss_fn, compute, batch_size)
        if not math.isfinite(val_loss):
            raise TrainingError(f"epoch {epoch}: val loss became {val_loss}; lower train.lr or check the data")
        row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], "train_loss": train_loss, "val_loss": val_loss, "val_iou": val_iou}
        scheduler.step()
        history.append(row)
        if val_iou > best["val_iou"]:
            best = {"val_iou": val_iou, "epoch": epoch, "weights": copy.deepcopy(model.state_dict())}
        if not world.is_main:
            continue
        _log_epoch(live, row)
        print(f"epoch {epoch}/{params.epochs}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, val IoU {val_iou:.4f}", file=sys.stderr)
        save_checkpoint(
            last_path,
            {
                "format": CHECKPOINT_FORMAT,
                "fingerprint": fingerprint,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "history": history,
                "best_model": best["weights"],
                "best_val_iou": best["val_iou"],
                "best_epoch": best["epoch"],
            },
        )
    return {"best": best, "normalization": normalization, "history": history}


def _log_epoch(live, row: dict) -> None:
    if live is None:
        return
    live.log_metric("train/loss", row["train_loss"])
    live.log_metric("val/loss", row["val_loss"])
    live.log_metric("val/iou", row["val_iou"])
    live.log_metric("lr", row["lr"])
    live.next_step()
