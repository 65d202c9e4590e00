"""The ``losses`` section: each loss's settings, and the loss names."""

from typing import Literal

from defectseg.config.section import Fraction, NonNegativeFloat, PositiveFloat, Section

LossName = Literal["bce", "dice", "dicebce", "focal", "tversky", "lovasz"]


OverlapReduction = Literal["defect_images", "batch", "image"]


class BceParams(Section):
    pos_weight: PositiveFloat


class DiceParams(Section):
    smooth: PositiveFloat
    reduction: OverlapReduction


class DiceBceParams(Section):
    dice_weight: NonNegativeFloat
    bce_weight: NonNegativeFloat
    pos_weight: PositiveFloat
    smooth: PositiveFloat
    reduction: OverlapReduction


class FocalParams(Section):
    alpha: Fraction
    gamma: NonNegativeFloat


class TverskyParams(Section):
    alpha: Fraction
    beta: Fraction
    smooth: PositiveFloat
    reduction: OverlapReduction


class LovaszParams(Section):
    reduction: OverlapReduction


class LossesParams(Section):
    bce: BceParams
    dice: DiceParams
    dicebce: DiceBceParams
    focal: FocalParams
    tversky: TverskyParams
    lovasz: LovaszParams
