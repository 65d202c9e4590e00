"""The mutable parts of one training run (model, optimizer, schedule, moving average, data), built from its ``RunSpec``."""

import functools
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from defectseg.config.train import TrainParams
from defectseg.data.dataset import Normalization, SegmentationDataset, Split
from defectseg.errors import DataError
from defectseg.models.compute import Compute, pick_device
from defectseg.models.factory import build_model
from defectseg.training.augment import build_augment
from defectseg.training.copy_paste import paste_defect
from defectseg.training.distributed import World
from defectseg.training.loader import EpochPlan, EpochSampler, build_loader, loader_workers
from defectseg.training.run_spec import RunSpec, TrainingError
from defectseg.training.schedule import build_scheduler, parameter_groups


def _optimizer(params: TrainParams, model) -> torch.optim.Optimizer:
    kind = torch.optim.AdamW if params.optimizer == "adamw" else torch.optim.Adam
    return kind(parameter_groups(model), lr=params.lr, weight_decay=params.weight_decay)


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
