"""Benchmark: images/s of one training step for each model at the default size.

Run: .venv/bin/python bench/train_step.py [--steps N]
Uses params.yaml's image size, batch size and each model's settings section; measures fp32 and the
configured precision/memory format in the same run, and prints their ratio.
"""

import argparse
import time
import typing

import torch

from defectseg.config.models import ModelName
from defectseg.config.params import load_params
from defectseg.models.compute import Compute, pick_device
from defectseg.models.factory import build_model
from defectseg.training.losses import build_loss


def images_per_second(model_name: str, compute: Compute, params, steps: int) -> float:
    torch.manual_seed(0)
    height, width = params.preprocess.height_width
    batch = params.train.batch_size
    model = compute.place(build_model(model_name, getattr(params.models, model_name)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = build_loss("dicebce", params.losses)
    images = compute.put(torch.randn(batch, 1, height, width))
    masks = (torch.rand(batch, 1, height, width) > 0.95).float()
    model.train()
    for step in range(steps + 2):
        if step == 2:
            start = time.perf_counter()
        with compute.autocast():
            logits = model(images)
        loss = loss_fn(logits.float(), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    params = load_params()
    device = pick_device(params.train.device, "train.device")
    configured = Compute(device, params.train.precision == "bf16", params.train.channels_last)
    plain = Compute(device)
    height, width = params.preprocess.height_width
    print(f"device {device}, {torch.get_num_threads()} threads, {height}x{width}, batch {params.train.batch_size}")
    print(f"{'model':28s} {'fp32 img/s':>11s} {'configured img/s':>17s} {'ratio':>6s}")
    for name in typing.get_args(ModelName):
        slow = images_per_second(name, plain, params, args.steps)
        fast = images_per_second(name, configured, params, args.steps)
        print(f"{name:28s} {slow:11.1f} {fast:17.1f} {fast / slow:6.2f}x", flush=True)


if __name__ == "__main__":
    main()
