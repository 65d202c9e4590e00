"""Segmentation losses on logits of shape (N, 1, H, W) against 0/1 targets.

One idea per function, each reducing to a scalar mean over the batch. Overlap losses
(Dice, Tversky) are computed either per image and then averaged (``per_image=True``:
every image counts the same, small defects matter) or over the whole batch as one
volume. The ``smooth`` term keeps them defined on defect-free images: an empty
prediction on an empty mask scores a perfect overlap.
"""

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from defectseg.params import LossesParams

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def bce_loss(logits: torch.Tensor, target: torch.Tensor, pos_weight: float = 1.0) -> torch.Tensor:
    """Binary cross-entropy with logits, mean over pixels; ``pos_weight`` scales defect pixels."""
    weight = torch.tensor(pos_weight, dtype=logits.dtype, device=logits.device)
    return F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight)


def _sum_dims(per_image: bool) -> tuple[int, ...]:
    return (1, 2, 3) if per_image else (0, 1, 2, 3)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0, per_image: bool = True) -> torch.Tensor:
    """1 - soft Dice of sigmoid probabilities."""
    probs = torch.sigmoid(logits)
    dims = _sum_dims(per_image)
    intersection = (probs * target).sum(dims)
    total = probs.sum(dims) + target.sum(dims)
    return (1 - (2 * intersection + smooth) / (total + smooth)).mean()


def dice_bce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    dice_weight: float = 0.5,
    bce_weight: float = 0.5,
    pos_weight: float = 1.0,
    smooth: float = 1.0,
    per_image: bool = True,
) -> torch.Tensor:
    """Weighted sum of Dice and BCE losses (``pos_weight`` scales the BCE's defect pixels)."""
    return dice_weight * dice_loss(logits, target, smooth, per_image) + bce_weight * bce_loss(logits, target, pos_weight)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017): BCE down-weighted on easy pixels, mean over pixels."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_true = torch.exp(-bce)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return (alpha_t * (1 - p_true) ** gamma * bce).mean()


def tversky_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 0.3,
    beta: float = 0.7,
    smooth: float = 1.0,
    per_image: bool = True,
) -> torch.Tensor:
    """1 - Tversky index; ``alpha`` weighs false positives, ``beta`` false negatives."""
    probs = torch.sigmoid(logits)
    dims = _sum_dims(per_image)
    tp = (probs * target).sum(dims)
    fp = (probs * (1 - target)).sum(dims)
    fn = ((1 - probs) * target).sum(dims)
    return (1 - (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)).mean()


def build_loss(name: str, params: LossesParams) -> LossFn:
    """The loss ``name`` with its settings from ``params.losses``."""
    functions = {"bce": bce_loss, "dice": dice_loss, "dicebce": dice_bce_loss, "focal": focal_loss, "tversky": tversky_loss}
    return partial(functions[name], **getattr(params, name).model_dump())
