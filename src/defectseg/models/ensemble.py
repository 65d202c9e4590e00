"""An ensemble of trained models averaged at the probability map: one model to every consumer.

Each member sees the pixels under its own normalization; the ensemble averages the members'
defect probabilities (and, where they have an image head, their "has a defect" probabilities)
and returns the logits of those means, so the sigmoid that every consumer applies (evaluate,
predict, serve, an exported graph) gives the mean probability back. Its own input is the pixels
scaled to 0..1 (a normalization of mean 0 and standard deviation 1).
"""

import torch
from torch import nn

# probabilities are clamped this far from 0 and 1 before the logit, so it stays finite
EPSILON = 1e-7


class Ensemble(nn.Module):
    """``members`` (each with its normalization ``(mean, std)``), their probabilities averaged."""

    def __init__(self, members: list[nn.Module], normalizations: list[tuple[float, float]]):
        super().__init__()
        if len(members) < 2 or len(members) != len(normalizations):
            raise ValueError("an ensemble takes two or more members, each with its normalization")
        self.members = nn.ModuleList(members)
        self.register_buffer("means", torch.tensor([mean for mean, _ in normalizations]), persistent=False)
        self.register_buffer("stds", torch.tensor([std for _, std in normalizations]), persistent=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        total = None
        for member, mean, std in zip(self.members, self.means, self.stds):
            probabilities = torch.sigmoid(member((pixels - mean) / std).float())
            if total is not None and probabilities.shape != total.shape:
                raise ValueError("ensemble members must give outputs of one shape (all with an image head, or none)")
            total = probabilities if total is None else total + probabilities
        return torch.logit((total / len(self.members)).clamp(EPSILON, 1 - EPSILON))
