"""What determines a training run (settings, data, code), how each epoch is seeded from it, and the error that stops one."""

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import torch

from defectseg.config.models import ModelSection
from defectseg.config.train import TrainParams
from defectseg.errors import DefectsegError


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
