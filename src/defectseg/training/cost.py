"""What a run costs: wall and CPU seconds across its sessions, and floating-point operations per step."""

import time
from dataclasses import dataclass, field

import torch
from torch.utils.flop_counter import FlopCounterMode

from defectseg.models.factory import build_model
from defectseg.training.run_spec import RunSpec


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
