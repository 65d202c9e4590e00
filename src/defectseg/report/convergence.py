"""Did a run finish learning? A rule on its own validation history.

A run is **still learning** when its best val IoU over the last eighth of its epochs
beats its best before that by more than ``GAIN`` (0.02 IoU); otherwise it has
**converged**. Why the last eighth and not the last quarter: under the annealed schedules
(``cosine``, ``onecycle``) the rate's final descent lifts val IoU through the third
quarter even in a run that has finished learning, while over the last eighth the rate is
under 4% of its peak, so a gain there means the run was still improving when it stopped.
A run not validated both inside and before its last eighth cannot be judged and counts
as still learning.

A flat history is not enough: a run stuck on an early plateau is flat too. So a run that
passes the tail rule is **stalled** when its best val IoU is under ``STALL_SHARE`` (a
quarter) of the best val IoU any run of the same comparison reached on the same val images
(its fold). Why this condition and not "flat since its first validation": a pretrained
encoder reaches most of its IoU before its first validation, so a flat start also
describes a run that learned fast; what tells a stall is how far below it stopped, and the
best run on the same images shows what they allow. Why a quarter: the stuck U-Net runs on
the Magnetic Tile set stopped at 0.043 and 0.054 against about 0.7 (under a tenth), while
a U-Net that learned on its own recipe stopped at 0.380 against 0.769 (half): a weaker
model that learned is just weaker. The rule needs a reference: where every run stalls
alike, none is marked.
"""

import math

import pandas as pd

GAIN = 0.02
TAIL = 1 / 8
STALL_SHARE = 0.25


def convergence(val_iou: pd.Series, epochs: int) -> dict:
    """``{"converged": bool, "tail_gain": float | None}`` for val IoUs indexed by epoch (1-based) of an ``epochs``-epoch run."""
    val_iou = val_iou.dropna()
    tail_start = epochs - math.ceil(TAIL * epochs)
    before, tail = val_iou[val_iou.index <= tail_start], val_iou[val_iou.index > tail_start]
    if before.empty or tail.empty:
        return {"converged": False, "tail_gain": None}
    gain = float(tail.max() - before.max())
    return {"converged": gain <= GAIN, "tail_gain": round(gain, 4)}


def stalled(best_val_iou: float, reference: float) -> bool:
    """Whether a run that stopped improving did so far below ``reference``, the comparison's best val IoU."""
    return best_val_iou < STALL_SHARE * reference
