"""Segmentation losses on logits of shape (N, 1, H, W) against 0/1 targets.

One idea per function, each reducing to a scalar mean over the batch (the Lovász hinge, a
sorting-based IoU surrogate, in ``lovasz``). Overlap losses
(Dice, Tversky) name what they are taken over (``reduction``):

- ``defect_images``: per image, averaged over the images that hold a defect. Every
  defective image counts the same (a 100-px blowhole as much as a 20,000-px uneven
  patch), and a defect-free image adds nothing: it is taught by the BCE term or the
  image head, never by a free perfect overlap. A batch with no defect gives 0.
- ``batch``: the whole batch as one volume; false positives on defect-free images
  enlarge the denominator, so they cost.
- ``image``: per image over every image. With the ``smooth`` term an empty prediction on
  an empty mask scores a perfect overlap, so on many defect-free tiles this rewards
  predicting nothing (kept to reproduce earlier comparisons).
"""

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from defectseg.config.losses import LossesParams, OverlapReduction
from defectseg.training.lovasz import lovasz_hinge_loss

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def bce_loss(logits: torch.Tensor, target: torch.Tensor, pos_weight: float = 1.0) -> torch.Tensor:
    """Binary cross-entropy with logits, mean over pixels; ``pos_weight`` scales defect pixels."""
    weight = torch.tensor(pos_weight, dtype=logits.dtype, device=logits.device)
    return F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight)


def overlap_counts(logits: torch.Tensor, target: torch.Tensor, reduction: OverlapReduction) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Soft true positives, false positives and false negatives, one of each per unit of ``reduction``
    (an image, a defective image, or the one batch); empty where ``defect_images`` finds none."""
    probs = torch.sigmoid(logits).flatten(1)
    target = target.flatten(1)
    if reduction == "batch":
        probs, target = probs.reshape(1, -1), target.reshape(1, -1)
    elif reduction == "defect_images":
        holds_defect = target.sum(1) > 0
        probs, target = probs[holds_defect], target[holds_defect]
    tp = (probs * target).sum(1)
    return tp, (probs * (1 - target)).sum(1), ((1 - probs) * target).sum(1)


def _mean_over_units(losses: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """The mean of per-unit losses; with no unit, a zero that stays in the autograd graph."""
    return losses.mean() if losses.numel() else logits.sum() * 0


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0, reduction: OverlapReduction = "defect_images") -> torch.Tensor:
    """1 - soft Dice of sigmoid probabilities."""
    tp, fp, fn = overlap_counts(logits, target, reduction)
    return _mean_over_units(1 - (2 * tp + smooth) / (2 * tp + fp + fn + smooth), logits)


def dice_bce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    dice_weight: float = 0.5,
    bce_weight: float = 0.5,
    pos_weight: float = 1.0,
    smooth: float = 1.0,
    reduction: OverlapReduction = "defect_images",
) -> torch.Tensor:
    """Weighted sum of Dice and BCE losses (``pos_weight`` scales the BCE's defect pixels)."""
    return dice_weight * dice_loss(logits, target, smooth, reduction) + bce_weight * bce_loss(logits, target, pos_weight)


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
    reduction: OverlapReduction = "defect_images",
) -> torch.Tensor:
    """1 - Tversky index; ``alpha`` weighs false positives, ``beta`` false negatives."""
    tp, fp, fn = overlap_counts(logits, target, reduction)
    return _mean_over_units(1 - (tp + smooth) / (tp + alpha * fp + beta * fn + smooth), logits)


def build_loss(name: str, params: LossesParams) -> LossFn:
    """The loss ``name`` with its settings from ``params.losses``."""
    functions = {"bce": bce_loss, "dice": dice_loss, "dicebce": dice_bce_loss, "focal": focal_loss, "tversky": tversky_loss, "lovasz": lovasz_hinge_loss}
    return partial(functions[name], **getattr(params, name).model_dump())
