"""Stratified, seeded roles (train, val, test) for the single split and for each cross-validation fold.

Each class is shuffled by a generator seeded only from the split seed, the class name
and (for a fold's val) the fold, so the roles are the same for the same seed and ids
whatever other params say.
"""

import zlib

import numpy as np

from defectseg.config.data import SplitParams

SPLITS = ("train", "val", "test")


def fold_column(fold: int) -> str:
    """The manifest column holding each pair's role (train, val or test) in ``fold``."""
    return f"fold{fold}"


def _class_members(ids: list[str], classes: list[str]) -> dict[str, list[int]]:
    """Positions of each class's ids, sorted by id so the input order does not matter."""
    if len(ids) != len(classes):
        raise ValueError("ids and classes differ in length")
    members: dict[str, list[int]] = {}
    for position in sorted(range(len(ids)), key=lambda i: ids[i]):
        members.setdefault(classes[position], []).append(position)
    return members


def _generator(seed: int, defect_class: str, *more: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(defect_class.encode()), *more])


def assign_splits(ids: list[str], classes: list[str], params: SplitParams) -> list[str]:
    """Return the split name of each id, stratified by its class."""
    result = [""] * len(ids)
    for defect_class, positions in sorted(_class_members(ids, classes).items()):
        order = _generator(params.seed, defect_class).permutation(len(positions))
        n_val = round(len(positions) * params.val)
        n_test = round(len(positions) * params.test)
        for rank, index in enumerate(order):
            result[positions[index]] = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
    return result


def assign_folds(ids: list[str], classes: list[str], folds: int, params: SplitParams) -> list[list[str]]:
    """The role of each id in each of ``folds`` cross-validation folds: ``result[fold][i]``.

    Each class is dealt round-robin into the folds after a seeded shuffle, so every fold
    holds its share of every class and every id is tested in exactly one fold. In fold
    ``f`` the other folds' ids are train, less a val part carved from them per class at
    the ``params.val : params.train`` ratio.
    """
    if folds < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    val_share = params.val / (params.train + params.val) if params.train + params.val > 0 else 0.0
    result = [[""] * len(ids) for _ in range(folds)]
    for defect_class, positions in sorted(_class_members(ids, classes).items()):
        order = _generator(params.seed, defect_class).permutation(len(positions))
        test_fold = {positions[index]: rank % folds for rank, index in enumerate(order)}
        for fold in range(folds):
            rest = [p for p in positions if test_fold[p] != fold]
            carved = _generator(params.seed, defect_class, fold + 1).permutation(len(rest))
            n_val = round(len(rest) * val_share)
            for p in positions:
                result[fold][p] = "test" if test_fold[p] == fold else "train"
            for index in carved[:n_val]:
                result[fold][rest[index]] = "val"
    return result
