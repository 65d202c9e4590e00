"""Benchmark: each arm's training-step time against a reference model, and the epochs that give it the reference's step time.

Run: .venv/bin/python bench/equal_minutes.py --config configs/mtd.yaml \
         mobilenet_unet efficientnet_unet efficientnet_unet:configs/mtd-lite1.yaml
An arm is a model name, optionally with a config file of its own after a colon (dotted params
keys, layered last); the first arm is the reference. Params are params.yaml under the
--config layers (as ``defectseg compare`` layers them). Each arm trains the real model on random
images of the configured size and batch, with the configured loss and image head, device,
precision and memory format (as the trainer places them), steps of AdamW; the arms take turns for --rounds rounds so that a slow spell of the machine falls on all
of them, and each arm's step time is its median over rounds. Printed: seconds per step, the
ratio to the reference, and the epochs at which the arm's steps take the reference's time (the
reference's recipe epochs divided by the ratio).

That is an upper bound on the ratio of whole epochs, not equal training minutes: an epoch also
loads, augments (copy-paste with Poisson cloning) and validates, the same work for every model.
On the 3-fold MTD schedule (2026-12-06, 2-core Intel Xeon) a Lite1 step cost 1.39x MobileNetV2's
here while a Lite1 epoch cost 1.04x in the runs' own ``cost.json`` (``train_minutes``): set the
epochs for equal minutes from the runs' minutes, with this ratio as the bound.
"""

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from defectseg.cli.compare import layered_overrides
from defectseg.config.loading import read_yaml
from defectseg.config.params import apply_overrides, parse_params
from defectseg.models.compute import Compute, pick_device
from defectseg.models.encoder_unet import split_logits
from defectseg.models.factory import build_model
from defectseg.training.losses import build_loss


def arm_params(spec: str, configs: list[Path]):
    """The params of one arm: params.yaml, the config layers, then the arm's own overrides."""
    model, _, own = spec.partition(":")
    overrides = layered_overrides([*configs, *([Path(own)] if own else [])], None)
    return model, parse_params(apply_overrides(read_yaml(Path("params.yaml")), overrides), spec)


class Arm:
    """One arm's model, optimizer and batch, ready to take timed steps."""

    def __init__(self, spec: str, configs: list[Path], loss: str):
        torch.manual_seed(0)
        self.spec = spec
        self.model_name, self.params = arm_params(spec, configs)
        section = getattr(self.params.models, self.model_name)
        recipe = self.params.train_for(self.model_name)
        self.compute = Compute(pick_device(recipe.device, "train.device"), recipe.precision == "bf16", recipe.channels_last)
        self.model = self.compute.place(build_model(self.model_name, section))
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3)
        self.loss_fn = build_loss(loss, self.params.losses)
        self.head_weight = getattr(section, "image_head_weight", 0.0)
        height, width = self.params.preprocess.height_width
        self.images = self.compute.put(torch.randn(recipe.batch_size, 1, height, width))
        self.masks = (torch.rand(recipe.batch_size, 1, height, width) > 0.95).float().to(self.compute.device)
        self.epochs = recipe.epochs

    def seconds_per_step(self, steps: int) -> float:
        self.model.train()
        start = time.perf_counter()
        for _ in range(steps):
            with self.compute.autocast():
                output = self.model(self.images)
            logits, image_logits = split_logits(output.float())
            loss = self.loss_fn(logits, self.masks)
            if image_logits is not None:
                loss = loss + self.head_weight * F.binary_cross_entropy_with_logits(image_logits, self.masks.amax((1, 2, 3)))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("arms", nargs="+", help="MODEL or MODEL:CONFIG.yaml; the first is the reference")
    parser.add_argument("--config", type=Path, action="append", default=[], help="dotted-key override files, later ones win")
    parser.add_argument("--loss", default="dicebce")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per arm per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    arms = [Arm(spec, args.config, args.loss) for spec in args.arms]
    for arm in arms:
        arm.seconds_per_step(2)
    times = {arm.spec: [] for arm in arms}
    for _ in range(args.rounds):
        for arm in arms:
            times[arm.spec].append(arm.seconds_per_step(args.steps))
    reference = arms[0]
    base = statistics.median(times[reference.spec])
    print(f"{torch.get_num_threads()} threads, batch {reference.images.shape[0]}, {tuple(reference.images.shape[2:])}, loss {args.loss}; "
          f"median of {args.rounds} rounds of {args.steps} steps")  # fmt: skip
    print(f"{'arm':45s} {'s/step':>7s} {'ratio':>6s} {'epochs for equal step time':>28s}")
    for arm in arms:
        seconds = statistics.median(times[arm.spec])
        ratio = seconds / base
        print(f"{arm.spec:45s} {seconds:7.3f} {ratio:6.2f} {reference.epochs / ratio:28.1f}")


if __name__ == "__main__":
    main()
