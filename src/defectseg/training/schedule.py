"""The optimizer's parameter groups and learning-rate schedule, stepped once per training step.

Two groups: a pretrained encoder (the model's ``encoder`` submodule, where it has one)
and everything else. The encoder can learn at a fraction of the rate
(``train.encoder_lr_scale``) and stay frozen for the first epochs
(``train.freeze_encoder_epochs``: its rate is zero, so the new decoder settles first).
Over that, every group follows one schedule: ``constant``, ``cosine`` (from the peak to
zero), or ``onecycle`` (a linear warm-up from 1/25 of the peak over
``train.warmup_epochs``, then cosine to zero, as in Smith's one-cycle policy).
"""

import math

import torch
from torch import nn

from defectseg.config.train import TrainParams

WARMUP_START = 1 / 25  # torch's OneCycleLR starts at max_lr / div_factor, 25 by default


def encoder_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of the model's ``encoder`` submodule (a pretrained backbone), or none."""
    for name, module in model.named_modules():
        if name.rpartition(".")[2] == "encoder":
            return list(module.parameters())
    return []


def parameter_groups(model: nn.Module) -> list[dict]:
    """[encoder, rest] as optimizer groups (the encoder group may be empty and is then left out)."""
    encoder = {id(p) for p in encoder_parameters(model)}
    groups = [
        {"name": "encoder", "params": [p for p in model.parameters() if id(p) in encoder]},
        {"name": "rest", "params": [p for p in model.parameters() if id(p) not in encoder]},
    ]
    return [group for group in groups if group["params"]]


def schedule_factor(schedule: str, step: int, total_steps: int, warmup_steps: int) -> float:
    """The share of the peak learning rate at ``step`` (0-based) of ``total_steps``."""
    if schedule == "constant":
        return 1.0
    if schedule == "onecycle" and step < warmup_steps:
        return WARMUP_START + (1 - WARMUP_START) * step / warmup_steps
    start = warmup_steps if schedule == "onecycle" else 0
    return 0.5 * (1 + math.cos(math.pi * (step - start) / max(total_steps - start, 1)))


def build_scheduler(optimizer: torch.optim.Optimizer, params: TrainParams, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The per-step schedule of every group of ``optimizer`` (built from ``parameter_groups``)."""
    total, warmup, frozen = params.epochs * steps_per_epoch, params.warmup_epochs * steps_per_epoch, params.freeze_encoder_epochs * steps_per_epoch

    def rest(step: int) -> float:
        return schedule_factor(params.schedule, step, total, warmup)

    def encoder(step: int) -> float:
        return 0.0 if step < frozen else params.encoder_lr_scale * rest(step)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, [encoder if group["name"] == "encoder" else rest for group in optimizer.param_groups])
