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
import math
import sys
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from defectseg.data.dataset import Normalization, Split
from defectseg.foundation.threads import fix_threads
from defectseg.measures.metrics import iou_by_threshold
from defectseg.models.compute import Compute, predict_logits, same_size_groups
from defectseg.models.encoder_unet import split_logits
from defectseg.training.cost import Cost, step_flops
from defectseg.training.distributed import World, mean_over_processes, same_on_every_process
from defectseg.training.losses import LossFn
from defectseg.training.resume import resume_state, save_last
from defectseg.training.run_spec import RunSpec, TrainingError, seed_epoch
from defectseg.training.trainer import Trainer

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
    resumed = resume_state(last_path, spec)
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
            save_last(last_path, trainer, spec, history, best, cost.so_far())
    crop = spec.params.augment.crop_size
    height, width = (crop, crop) if crop else train_split.images.shape[1:]
    flops = step_flops(spec, trainer.batch_size, height, width) * trainer.steps_per_epoch * len(history) * world.size
    return {"best": best, "normalization": trainer.dataset.normalization, "history": history, "threads": threads, "flops": flops, **cost.so_far()}


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


def _log_epoch(live, row: dict) -> None:
    if live is None:
        return
    live.log_metric("train/loss", row["train_loss"])
    if "val_iou" in row:
        live.log_metric("val/loss", row["val_loss"])
        live.log_metric("val/iou", row["val_iou"])
    live.log_metric("lr", row["lr"])
    live.next_step()
