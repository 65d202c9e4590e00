"""Parameter groups and the per-step learning-rate schedule."""

import pytest
import torch

from conftest import params_with
from defectseg.models.factory import build_model
from defectseg.training.schedule import WARMUP_START, build_scheduler, parameter_groups, schedule_factor


def test_onecycle_warms_up_linearly_then_anneals_to_zero():
    factors = [schedule_factor("onecycle", step, 100, 20) for step in range(101)]
    assert factors[0] == pytest.approx(WARMUP_START) and factors[10] == pytest.approx(WARMUP_START + (1 - WARMUP_START) / 2)
    assert factors[20] == pytest.approx(1.0) and factors[100] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(factors[20:], factors[21:]))


def test_cosine_starts_at_the_peak_and_constant_stays_there():
    assert schedule_factor("cosine", 0, 50, 0) == 1.0 and schedule_factor("cosine", 25, 50, 0) == pytest.approx(0.5)
    assert {schedule_factor("constant", step, 50, 0) for step in (0, 25, 49)} == {1.0}


def test_a_pretrained_encoder_gets_its_own_group_and_a_plain_unet_one_group():
    mobilenet = build_model("mobilenet_unet", params_with(**{"models.mobilenet_unet.weights": ""}).models.mobilenet_unet)
    groups = parameter_groups(mobilenet)
    assert [g["name"] for g in groups] == ["encoder", "rest"]
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in mobilenet.encoder.parameters()}
    assert sum(len(g["params"]) for g in groups) == len(list(mobilenet.parameters()))
    assert [g["name"] for g in parameter_groups(build_model("unet", params_with().models.unet))] == ["rest"]


def test_frozen_then_slower_encoder_follows_the_schedule_of_the_rest():
    params = params_with(**{"train.epochs": 4, "train.freeze_encoder_epochs": 1, "train.encoder_lr_scale": 0.5, "train.schedule": "constant", "train.lr": 0.01})
    model = build_model("mobilenet_unet", params_with(**{"models.mobilenet_unet.weights": ""}).models.mobilenet_unet)
    optimizer = torch.optim.AdamW(parameter_groups(model), lr=params.train.lr)
    scheduler = build_scheduler(optimizer, params.train, steps_per_epoch=3)
    rates = []
    for _ in range(12):
        rates.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    assert rates[:3] == [[0.0, 0.01]] * 3 and rates[3:] == [[0.005, 0.01]] * 9
