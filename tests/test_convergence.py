"""The convergence rule on hand-made validation histories."""

import pandas as pd

from defectseg.report.convergence import convergence, stalled


def history(values: list[float], every: int = 1) -> pd.Series:
    return pd.Series(values, index=range(every, every * len(values) + 1, every))


def test_a_plateau_over_the_last_eighth_has_converged():
    # 16 epochs: the last eighth is epochs 15 and 16
    values = [0.1, 0.2, 0.3, 0.4, 0.45, 0.5, 0.52, 0.54, 0.56, 0.58, 0.6, 0.62, 0.64, 0.65, 0.655, 0.66]
    assert convergence(history(values), 16) == {"converged": True, "tail_gain": 0.01}


def test_a_gain_over_0_02_in_the_last_eighth_is_still_learning():
    values = [0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.52, 0.54, 0.56, 0.58, 0.6, 0.62, 0.63, 0.64, 0.66]
    assert convergence(history(values), 16) == {"converged": False, "tail_gain": 0.03}


def test_a_late_drop_counts_as_converged():
    result = convergence(history([0.2, 0.5, 0.6, 0.6, 0.6, 0.6, 0.4, 0.45]), 8)
    assert result["converged"] and result["tail_gain"] < 0


def test_sparse_validation_uses_the_epochs_it_has():
    # validated every 5 of 40 epochs: the last eighth (epochs 36-40) holds epoch 40 only
    assert convergence(history([0.3, 0.4, 0.5, 0.52, 0.53, 0.54, 0.55, 0.58], every=5), 40) == {"converged": False, "tail_gain": 0.03}


def test_a_run_validated_only_in_its_last_eighth_cannot_be_called_converged():
    assert convergence(pd.Series([0.5], index=[2]), 2) == {"converged": False, "tail_gain": None}


def test_a_flat_run_far_below_the_comparisons_best_is_stalled():
    stuck = history([0.03, 0.045, 0.05, 0.052, 0.054, 0.053, 0.054, 0.054])
    assert convergence(stuck, 8)["converged"]
    assert stalled(float(stuck.max()), reference=0.66)


def test_a_weaker_run_that_learned_is_not_stalled_and_the_best_run_never_is():
    assert not stalled(0.380, reference=0.769), "the U-Net on its own recipe, fold 1 of the Magnetic Tile set"
    assert not stalled(0.66, reference=0.66)


def test_when_every_run_stalls_alike_none_is_marked():
    assert not stalled(0.05, reference=0.054)
