"""The Lovász hinge (Berman, Rannen Triki and Blaschko, CVPR 2018): a convex surrogate of 1 - IoU
that the optimizer can follow, as segmentation_models.pytorch's ``LovaszLoss`` (binary mode).

Each pixel's hinge error is ``1 - logit * sign`` (sign +1 on defect, -1 on background). Sorted
from the largest error down, the errors are weighted by how much each further wrong pixel costs
the Jaccard index (the Lovász extension's gradient), so the loss is the IoU loss itself, made
piecewise linear. Over an image without defect every positive logit costs the whole IoU (an
empty truth's IoU is 0 once anything is predicted), so its weight falls on the highest logit.

``reduction`` as for the overlap losses: ``batch`` takes the whole batch as one volume (the
surrogate of pooled IoU, the comparison's headline); ``image`` averages per image;
``defect_images`` averages over the images with a defect (0 with gradient 0 if there is none).
"""

import torch
import torch.nn.functional as F

from defectseg.config.losses import OverlapReduction


def lovasz_grad(truth_sorted: torch.Tensor) -> torch.Tensor:
    """The Lovász extension's gradient of the Jaccard loss at 0/1 truths sorted by decreasing error."""
    positives = truth_sorted.sum()
    intersection = positives - truth_sorted.cumsum(0)
    union = positives + (1 - truth_sorted).cumsum(0)
    jaccard = 1 - intersection / union
    return torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])


def lovasz_hinge_flat(logits: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """The Lovász hinge of one volume: flat logits and their 0/1 truths."""
    errors = 1 - logits * (2 * truth - 1)
    errors_sorted, order = torch.sort(errors, descending=True)
    return torch.dot(F.relu(errors_sorted), lovasz_grad(truth[order]))


def lovasz_hinge_loss(logits: torch.Tensor, target: torch.Tensor, reduction: OverlapReduction = "batch") -> torch.Tensor:
    """The Lovász hinge of logits (N, 1, H, W) against 0/1 targets, over ``reduction``'s units."""
    logits, target = logits.float().flatten(1), target.float().flatten(1)
    if reduction == "batch":
        return lovasz_hinge_flat(logits.reshape(-1), target.reshape(-1))
    if reduction == "defect_images":
        holds_defect = target.sum(1) > 0
        logits, target = logits[holds_defect], target[holds_defect]
        if not len(logits):
            return logits.sum() * 0
    return torch.stack([lovasz_hinge_flat(image, truth) for image, truth in zip(logits, target)]).mean()
