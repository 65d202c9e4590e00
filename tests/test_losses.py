"""Each loss against values worked out by hand, including empty and full masks."""

import math

import pytest
import torch

from conftest import params_with
from defectseg.training.losses import bce_loss, build_loss, dice_bce_loss, dice_loss, focal_loss, tversky_loss
from defectseg.training.lovasz import lovasz_hinge_loss

BIG = 100.0


def t(values) -> torch.Tensor:
    """A (N, 1, H, W) float tensor from nested lists of shape (N, H, W)."""
    return torch.tensor(values, dtype=torch.float32).unsqueeze(1)


def test_bce_matches_hand_value():
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 2
    assert bce_loss(t([[[2.0, -1.0]]]), t([[[1.0, 0.0]]])).item() == pytest.approx(expected, rel=1e-6)


def test_bce_pos_weight_scales_defect_pixels_only():
    logits, target = t([[[0.0, 0.0]]]), t([[[1.0, 0.0]]])
    assert bce_loss(logits, target, pos_weight=3.0).item() == pytest.approx((3 * math.log(2) + math.log(2)) / 2, rel=1e-6)


def test_dice_is_zero_for_a_perfect_prediction():
    assert dice_loss(t([[[BIG] * 4]]), t([[[1.0] * 4]])).item() == pytest.approx(0.0, abs=1e-6)


def test_dice_per_image_scores_an_empty_prediction_on_an_empty_tile_as_perfect():
    # the flaw the image reduction keeps: nothing predicted on a defect-free tile is a free 0 loss
    assert dice_loss(t([[[-BIG] * 4]]), t([[[0.0] * 4]]), reduction="image").item() == pytest.approx(0.0, abs=1e-6)
    # intersection 0, sum of probabilities 2, smooth 1: dice = 1 / 3
    assert dice_loss(t([[[0.0] * 4]]), t([[[0.0] * 4]]), reduction="image").item() == pytest.approx(2 / 3, rel=1e-6)


@pytest.mark.parametrize("loss", [dice_loss, tversky_loss])
def test_overlap_over_defect_images_is_zero_without_gradient_on_an_all_empty_batch(loss):
    logits = torch.randn(3, 1, 4, 4, requires_grad=True)
    value = loss(logits, torch.zeros(3, 1, 4, 4), reduction="defect_images")
    value.backward()
    assert value.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


def test_dice_over_defect_images_averages_only_the_images_that_hold_a_defect():
    # image 0: p = 0.5 on its 4 defect pixels: tp 2, fp 0, fn 2 -> dice (4 + 1) / (4 + 2 + 1) = 5/7;
    # image 1: defect-free with anything predicted on it, which must not move the loss
    target = t([[[1.0] * 4], [[0.0] * 4]])
    for empty_logit in (-BIG, 0.0, BIG):
        logits = t([[[0.0] * 4], [[empty_logit] * 4]])
        assert dice_loss(logits, target, reduction="defect_images").item() == pytest.approx(1 - 5 / 7, rel=1e-5)


def test_dice_over_the_batch_charges_false_positives_on_a_defect_free_image():
    target = t([[[1.0] * 4], [[0.0] * 4]])
    clean = dice_loss(t([[[BIG] * 4], [[-BIG] * 4]]), target, reduction="batch").item()
    # 4 false positives on the empty image: (2*4 + 1) / (4 + 4 + 4 + 1) = 9/13
    flagged = dice_loss(t([[[BIG] * 4], [[BIG] * 4]]), target, reduction="batch").item()
    assert clean == pytest.approx(0.0, abs=1e-6) and flagged == pytest.approx(1 - 9 / 13, rel=1e-5)


def test_dice_per_image_averages_images_and_batch_mode_pools_them():
    logits = t([[[BIG] * 4], [[0.0] * 4]])
    target = t([[[1.0] * 4], [[0.0] * 4]])
    # per image: dice 1 and 1/3, mean 2/3 -> loss 1/3; pooled: (2*4 + 1) / (4 + 4 + 2 + 1) = 9/11
    assert dice_loss(logits, target, reduction="image").item() == pytest.approx(1 / 3, rel=1e-5)
    assert dice_loss(logits, target, reduction="batch").item() == pytest.approx(2 / 11, rel=1e-5)


def test_tversky_over_defect_images_ignores_the_defect_free_image():
    # p = 0.5 on image 0 with 2 of 4 pixels defect: tp 1, fp 1, fn 1 -> 1 - 2/3; image 1 is empty
    logits, target = t([[[0.0] * 4], [[BIG] * 4]]), t([[[1.0, 1.0, 0.0, 0.0]], [[0.0] * 4]])
    assert tversky_loss(logits, target, alpha=0.3, beta=0.7).item() == pytest.approx(1 - 2 / 3, rel=1e-6)


def test_dice_bce_is_the_weighted_sum():
    logits, target = t([[[0.5, -1.0, 2.0, 0.0]]]), t([[[1.0, 0.0, 1.0, 0.0]]])
    expected = 0.3 * dice_loss(logits, target) + 0.7 * bce_loss(logits, target)
    assert dice_bce_loss(logits, target, dice_weight=0.3, bce_weight=0.7).item() == pytest.approx(expected.item(), rel=1e-6)


def test_dice_bce_pos_weight_reaches_its_bce_term():
    logits, target = t([[[0.0, 0.0]]]), t([[[1.0, 0.0]]])
    expected = 0.5 * dice_loss(logits, target) + 0.5 * bce_loss(logits, target, pos_weight=4.0)
    assert dice_bce_loss(logits, target, pos_weight=4.0).item() == pytest.approx(expected.item(), rel=1e-6)


def test_focal_matches_hand_value():
    # logit 0 on a defect pixel: bce = ln 2, p_t = 0.5, alpha 0.25, gamma 2
    assert focal_loss(t([[[0.0]]]), t([[[1.0]]])).item() == pytest.approx(0.25 * 0.25 * math.log(2), rel=1e-6)


def test_tversky_matches_hand_value():
    # p = 0.5 everywhere, 2 of 4 pixels defect: tp = 1, fp = 1, fn = 1
    value = tversky_loss(t([[[0.0] * 4]]), t([[[1.0, 1.0, 0.0, 0.0]]]), alpha=0.3, beta=0.7)
    assert value.item() == pytest.approx(1 - 2 / 3, rel=1e-6)


def test_tversky_per_image_is_zero_on_empty_mask_and_empty_prediction():
    assert tversky_loss(t([[[-BIG] * 4]]), t([[[0.0] * 4]]), reduction="image").item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("name", ["bce", "dice", "dicebce", "focal", "tversky", "lovasz"])
def test_every_loss_gives_a_finite_gradient(name):
    logits = torch.randn(2, 1, 8, 8, requires_grad=True)
    loss = build_loss(name, params_with().losses)(logits, (torch.rand(2, 1, 8, 8) > 0.7).float())
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_lovasz_hinge_matches_a_hand_value():
    # errors 1 - logit * sign: defect pixels (logits 2, -1) give -1 and 2, background (0.5) gives 1.5;
    # sorted 2 (defect), 1.5 (background), -1 (defect): Jaccard losses 1/2, 2/3, 1 -> weights 1/2, 1/6, 1/3
    logits = torch.tensor([2.0, -1.0, 0.5]).reshape(1, 1, 1, 3)
    target = torch.tensor([1.0, 1.0, 0.0]).reshape(1, 1, 1, 3)
    assert lovasz_hinge_loss(logits, target).item() == pytest.approx(2 * 0.5 + 1.5 / 6, rel=1e-6)


def test_lovasz_hinge_is_zero_only_when_every_pixel_is_right_by_the_margin():
    target = torch.zeros(2, 1, 4, 4)
    target[0, 0, :2] = 1
    sure = (2 * target - 1) * 3
    assert lovasz_hinge_loss(sure, target).item() == 0.0
    assert lovasz_hinge_loss(sure * 0.2, target).item() > 0.0  # right, but inside the margin of 1


@pytest.mark.parametrize("reduction", ["batch", "image", "defect_images"])
def test_lovasz_hinge_on_an_all_empty_batch_pushes_only_the_highest_logit_down(reduction):
    # the only logit within the margin of background is 0.2 (error 1.2); the others' errors are below 0
    logits = torch.tensor([[-3.0, 0.2], [-2.0, -4.0]]).reshape(2, 1, 1, 2).requires_grad_()
    loss = lovasz_hinge_loss(logits, torch.zeros(2, 1, 1, 2), reduction)
    loss.backward()
    if reduction == "defect_images":
        assert loss.item() == 0.0 and not logits.grad.any()
    else:
        assert loss.item() > 0 and logits.grad.flatten()[1] > 0 and (logits.grad.flatten()[[0, 2, 3]] == 0).all()


def test_lovasz_hinge_over_defect_images_ignores_the_defect_free_image():
    target = torch.zeros(2, 1, 2, 2)
    target[0, 0, 0] = 1
    logits = torch.randn(2, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    only_defect = lovasz_hinge_loss(logits[:1], target[:1], "defect_images")
    assert lovasz_hinge_loss(logits, target, "defect_images").item() == pytest.approx(only_defect.item(), rel=1e-6)
    assert lovasz_hinge_loss(logits, target, "image").item() != pytest.approx(only_defect.item(), rel=1e-3)


def test_lovasz_hinge_falls_as_the_predictions_iou_rises():
    target = torch.zeros(1, 1, 8, 8)
    target[0, 0, 2:6, 2:6] = 1
    losses = []
    for cells in (4, 8, 12, 16):  # predicted defect cells, the first `cells` of the 16 true ones
        logits = torch.full((1, 1, 8, 8), -2.0)
        rows, columns = torch.nonzero(target[0, 0], as_tuple=True)
        logits[0, 0, rows[:cells], columns[:cells]] = 2.0
        losses.append(lovasz_hinge_loss(logits, target).item())
    assert losses == sorted(losses, reverse=True) and losses[-1] == 0.0
