"""The training loop: fit one model with one loss and seed, resumable and deterministic.

Read it top to bottom: set-up, optional resume, then one loop over epochs that trains,
validates, logs to DVCLive, keeps the best model by val defect IoU, and saves the
last state after every epoch. The learning rate follows ``schedule`` step by step; with
``train.ema_decay`` an exponential moving average of the weights is what is validated
and kept. Each epoch re-seeds every random source from
(seed, epoch), so a run resumed after epoch k continues exactly as an uninterrupted one.
A run resumes only a state saved with the same settings, data and code (``RunSpec``);
the caller deletes the state once the final model is saved, so a finished run leaves
nothing to resume.
"""

import copy
import functools
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from defectseg.augment import build_augment
from defectseg.checkpoint import load_checkpoint, save_checkpoint
from defectseg.code_fingerprint import changed_modules
from defectseg.dataset import Normalization, SegmentationDataset, Split
from defectseg.distributed import World, mean_over_processes, same_on_every_process
from defectseg.errors import DataError, DefectsegError
from defectseg.inference import Compute, pick_device, predict_logits, same_size_groups
from defectseg.copy_paste import paste_defect
from defectseg.loader import EpochPlan, EpochSampler, build_loader, loader_workers
from defectseg.losses import LossFn
from defectseg.metrics import iou_by_threshold
from defectseg.models import build_model, split_logits
from defectseg.params import ModelSection, TrainParams
from defectseg.schedule import build_scheduler, parameter_groups
from defectseg.threads import fix_threads

CHECKPOINT_FORMAT = "defectseg-checkpoint-1"


class TrainingError(DefectsegError):
    """Training cannot go on (for example the loss became NaN)."""


@dataclass
class RunSpec:
    """Everything that determines a training run: settings, data and the code that trains
    (``code``: ``code_fingerprint.module_hashes``). A saved state is resumed only when its
    fingerprint and code match."""

    params: TrainParams
    model_name: str
    model_settings: ModelSection
    loss_name: str
    loss_settings: dict
    seed: int
    data_fingerprint: str
    code: dict[str, str] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """A hash of the settings and data (the code is compared module by module, to name what changed)."""
        blob = json.dumps(
            [self.params.model_dump(), self.model_name, self.model_settings.model_dump(), self.loss_name, self.loss_settings, self.seed, self.data_fingerprint],
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()


def seed_epoch(seed: int, epoch: int, rank: int = 0) -> int:
    """Seed torch and numpy from (seed, epoch, rank); return the epoch seed.

    The returned seed is the same on every process, so all of them shuffle alike; each
    image's augmentation is seeded from it (``loader``).
    """
    epoch_seed = seed * 100_003 + epoch
    torch.manual_seed(epoch_seed + rank)
    np.random.seed((epoch_seed + rank) % 2**32)
    return epoch_seed


VAL_THRESHOLD_STEPS = 99


def validate(model, split: Split, normalization: Normalization, loss_fn: LossFn, compute: Compute, batch_size: int, side_multiple: int = 1) -> tuple[float, float]:
    """Val loss and global defect IoU at the best of 99 thresholds (as evaluate will choose).

    Images of several sizes run in groups of one size; the loss is then the mean of the
    groups' losses weighted by their image counts."""
    losses, probabilities, truth = [], [], []
    for positions in same_size_groups(split.images):
        images, masks = (np.stack(list(a[positions])) if a.dtype == object else a for a in (split.images, split.masks))
        logits, _ = split_logits(predict_logits(model, normalization.apply(images), compute, batch_size, side_multiple))
        losses.append(float(loss_fn(logits, torch.from_numpy(masks).float().unsqueeze(1))) * len(positions))
        probabilities.append(torch.sigmoid(logits).numpy().reshape(-1))
        truth.append(masks.reshape(-1) > 0)
    _, ious = iou_by_threshold(np.concatenate(probabilities), np.concatenate(truth), VAL_THRESHOLD_STEPS)
    return sum(losses) / len(split), float(ious.max())


def train_one_epoch(trainer: "Trainer", loss_fn, epoch: int, world: World) -> float:
    """One pass over the epoch's batches: a step of the optimizer, the schedule and the EMA
    per batch. The loss is summed on the device and read once, at the end of the epoch, so
    no step waits for the host."""
    trainer.net.train()
    compute = trainer.compute
    total, seen = torch.zeros((), device=compute.device), 0
    for images, masks in tqdm(trainer.loader, desc=f"epoch {epoch}", leave=False, file=sys.stderr, disable=None if world.is_main else True):
        images, masks = compute.put(images), masks.to(compute.device, non_blocking=True)
        with compute.autocast():
            output = trainer.net(images)
        logits, image_logits = split_logits(output.float())
        loss = loss_fn(logits, masks)
        if image_logits is not None:
            loss = loss + trainer.image_loss_weight * F.binary_cross_entropy_with_logits(image_logits, masks.amax((1, 2, 3)))
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizer.step()
        trainer.scheduler.step()
        if trainer.ema is not None:
            trainer.ema.update_parameters(trainer.model)
        total += loss.detach() * len(images)
        seen += len(images)
    mean = mean_over_processes(total.item() / seen, world)
    if not math.isfinite(mean):
        raise TrainingError(f"epoch {epoch}: loss became {mean}; lower train.lr or check the data")
    return mean


def _optimizer(params: TrainParams, model) -> torch.optim.Optimizer:
    kind = torch.optim.AdamW if params.optimizer == "adamw" else torch.optim.Adam
    return kind(parameter_groups(model), lr=params.lr, weight_decay=params.weight_decay)


def _resume_state(path: Path, spec: RunSpec) -> dict | None:
    """The saved state of an interrupted run of the same ``spec`` (settings, data, code), else None.

    ``last.pt`` is a resume aid, not a result: one that cannot be read, or was saved by
    other settings or other code, is passed over with one ``warning:`` line saying why,
    and the run starts from scratch.
    """
    if not path.exists():
        return None
    try:
        state = load_checkpoint(path)
    except DataError as exc:
        print(f"warning: {exc}; discarding it and training from scratch", file=sys.stderr)
        path.unlink()
        return None
    if state.get("format") != CHECKPOINT_FORMAT or state.get("fingerprint") != spec.fingerprint():
        print(f"warning: {path}: saved with other settings or data; training from scratch", file=sys.stderr)
        return None
    changed = changed_modules(state.get("code", {}), spec.code)
    if changed:
        print(f"warning: {path}: saved by other code ({', '.join(changed)} changed); training from scratch", file=sys.stderr)
        return None
    return state


@dataclass
class Trainer:
    """The mutable parts of one run: model (and its DDP wrapper), optimizer, schedule, the
    weights' moving average (``ema``, or None), data."""

    model: torch.nn.Module
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    ema: AveragedModel | None
    compute: Compute
    dataset: SegmentationDataset
    sampler: EpochSampler
    loader: DataLoader
    batch_size: int
    steps_per_epoch: int
    image_loss_weight: float = 0.0

    @property
    def kept(self) -> torch.nn.Module:
        """The model that is validated and saved: the moving average where there is one."""
        return self.model if self.ema is None else self.ema.module

    @classmethod
    def build(cls, spec: RunSpec, train_split: Split, last_path: Path, world: World) -> "Trainer":
        params = spec.params
        compute = Compute(pick_device(params.device, "train.device"), params.precision == "bf16", params.channels_last)
        # the same as use_deterministic_algorithms(True, warn_only=True), without its import of torch._inductor (~1.3-2.8 s a process)
        torch.set_deterministic_debug_mode("warn")
        torch.manual_seed(spec.seed)
        model = compute.place(build_model(spec.model_name, spec.model_settings))
        optimizer = _optimizer(params, model)
        copy_paste = params.copy_paste
        paste = functools.partial(paste_defect, poisson_share=copy_paste.poisson_share)
        dataset = SegmentationDataset(train_split, Normalization.of(train_split.images), build_augment(params.augment), paste)
        plan = EpochPlan(params.free_sample_share, params.class_balance, dict(copy_paste.shares))
        sampler = EpochSampler(train_split, plan, world.rank, world.size)
        epoch_size = sampler.epoch_size
        if epoch_size < 2 * world.size:
            raise DataError(last_path, f"an epoch would hold {epoch_size} image(s); training needs at least 2 per process")
        batch_size = min(params.batch_size, epoch_size) // world.size
        if batch_size < 2:
            raise TrainingError(f"train.batch_size {params.batch_size} split over {world.size} processes leaves fewer than 2 images per step")
        net = DistributedDataParallel(model) if world.size > 1 else model
        steps_per_epoch = len(sampler) // batch_size
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(params.ema_decay), use_buffers=True) if params.ema_decay else None
        loader = build_loader(dataset, sampler, batch_size, loader_workers(params.loader_workers, compute.device), compute.device)
        image_loss_weight = spec.model_settings.image_head_weight if spec.model_settings.has_image_head else 0.0
        scheduler = build_scheduler(optimizer, params, steps_per_epoch)
        return cls(model, net, optimizer, scheduler, ema, compute, dataset, sampler, loader, batch_size, steps_per_epoch, image_loss_weight)

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])


def step_flops(spec: RunSpec, batch_size: int, height: int, width: int) -> int:
    """Floating-point operations of one training step (forward and backward) on ``batch_size``
    images of ``height`` x ``width``, counted by torch's ``FlopCounterMode`` on a copy of the
    model on the meta device: shapes only, nothing computed and nothing of the run touched.

    A machine-independent training cost: the same on every machine and every run of the same
    settings, so it can sit in DVC-hashed outputs (wall and CPU minutes cannot: ``train_run``).
    """
    with torch.device("meta"):
        model = build_model(spec.model_name, spec.model_settings, pretrained=False).train()
        images = torch.empty(batch_size, 1, height, width)
    with FlopCounterMode(display=False) as counter:
        model(images).float().sum().backward()
    return int(counter.get_total_flops())


def fit(spec: RunSpec, loss_fn: LossFn, train_split: Split, val_split: Split, last_path: Path, live, world: World = World()) -> dict:
    """Train as ``spec`` says; return the best weights, normalization and per-epoch history.

    ``last_path`` holds the resumable state, rewritten after every epoch. ``live`` is a
    DVCLive ``Live`` (None on processes other than rank 0); the history of a resumed run
    is logged again first, so its plots are whole. With several processes (``world``)
    each trains on its shard of every epoch with a share of the batch, and gradients
    are averaged by DistributedDataParallel; only rank 0 writes. The run's CPU thread
    count is fixed at its start (``train.threads``) and returned with the result, with
    its cost: wall and CPU seconds of training (a resumed run adds its earlier sessions'), and
    the floating-point operations of its training steps (``step_flops``; validation not counted).
    """
    trainer = Trainer.build(spec, train_split, last_path, world)
    threads = fix_threads(spec.params.threads)
    history: list[dict] = []
    best = {"val_iou": -math.inf, "epoch": 0, "weights": copy.deepcopy(trainer.kept.state_dict())}
    cost = Cost()
    resumed = _resume_state(last_path, spec)
    if resumed is not None:
        trainer.restore(resumed)
        history = list(resumed["history"])
        best = {"val_iou": resumed["best_val_iou"], "epoch": resumed["best_epoch"], "weights": resumed["best_model"]}
        cost = Cost(resumed.get("seconds", 0.0), resumed.get("cpu_seconds", 0.0))
        if world.is_main:
            print(f"resuming after epoch {len(history)} of {spec.params.epochs}", file=sys.stderr)
    if not same_on_every_process(len(history), world):
        raise TrainingError(f"{last_path}: the processes would resume after different epochs (a node lacks this resume state): "
                            "copy it to every node, or delete it on all of them to start over")
    for row in history:
        _log_epoch(live, row)

    for epoch in range(len(history) + 1, spec.params.epochs + 1):
        row = _epoch(trainer, spec, loss_fn, val_split, epoch, world)
        history.append(row)
        if row.get("val_iou", -math.inf) > best["val_iou"]:
            best = {"val_iou": row["val_iou"], "epoch": epoch, "weights": copy.deepcopy(trainer.kept.state_dict())}
        if world.is_main:
            _log_epoch(live, row)
            validated = f", val loss {row['val_loss']:.4f}, val IoU {row['val_iou']:.4f}" if "val_iou" in row else ""
            print(f"epoch {epoch}/{spec.params.epochs}: train loss {row['train_loss']:.4f}{validated}", file=sys.stderr)
            _save_last(last_path, trainer, spec, history, best, cost.so_far())
    crop = spec.params.augment.crop_size
    height, width = (crop, crop) if crop else train_split.images.shape[1:]
    flops = step_flops(spec, trainer.batch_size, height, width) * trainer.steps_per_epoch * len(history) * world.size
    return {"best": best, "normalization": trainer.dataset.normalization, "history": history, "threads": threads, "flops": flops, **cost.so_far()}


@dataclass
class Cost:
    """Wall and CPU seconds a run has trained: earlier sessions' (``seconds``, ``cpu_seconds``) plus this one's."""

    seconds: float = 0.0
    cpu_seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    cpu_started: float = field(default_factory=time.process_time)

    def so_far(self) -> dict[str, float]:
        return {
            "seconds": self.seconds + time.perf_counter() - self.started,
            "cpu_seconds": self.cpu_seconds + time.process_time() - self.cpu_started,
        }


def _epoch(trainer: Trainer, spec: RunSpec, loss_fn: LossFn, val_split: Split, epoch: int, world: World) -> dict:
    """Train one epoch, validate (every ``val_every`` epochs and after the last), step the
    schedule; return the epoch's history row."""
    trainer.sampler.set_epoch(seed_epoch(spec.seed, epoch, world.rank))
    lr = trainer.optimizer.param_groups[-1]["lr"]
    train_loss = train_one_epoch(trainer, loss_fn, epoch, world)
    row = {"epoch": epoch, "lr": lr, "train_loss": train_loss}
    if epoch % spec.params.val_every == 0 or epoch == spec.params.epochs:
        val_loss, val_iou = validate(
            trainer.kept, val_split, trainer.dataset.normalization, loss_fn, trainer.compute, trainer.batch_size, spec.model_settings.side_multiple
        )
        if not math.isfinite(val_loss):
            raise TrainingError(f"epoch {epoch}: val loss became {val_loss}; lower train.lr or check the data")
        row.update(val_loss=val_loss, val_iou=val_iou)
    return row


def _save_last(path: Path, trainer: Trainer, spec: RunSpec, history: list[dict], best: dict, cost: dict[str, float]) -> None:
    save_checkpoint(
        path,
        {
            **cost,
            "format": CHECKPOINT_FORMAT,
            "fingerprint": spec.fingerprint(),
            "code": spec.code,
            "model": trainer.model.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "scheduler": trainer.scheduler.state_dict(),
            **({} if trainer.ema is None else {"ema": trainer.ema.state_dict()}),
            "history": history,
            "best_model": best["weights"],
            "best_val_iou": best["val_iou"],
            "best_epoch": best["epoch"],
        },
    )


def _log_epoch(live, row: dict) -> None:
    if live is None:
        return
    live.log_metric("train/loss", row["train_loss"])
    if "val_iou" in row:
        live.log_metric("val/loss", row["val_loss"])
        live.log_metric("val/iou", row["val_iou"])
    live.log_metric("lr", row["lr"])
    live.next_step()
