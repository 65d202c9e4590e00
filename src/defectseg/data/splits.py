"""Roles (train, val, test) by group, stratified by class: for the single split and each cross-validation fold.

Every part is cut by scikit-learn's ``StratifiedGroupKFold``: whole groups (one physical
object each) go to one side, and each side holds about its share of every class. A part of
share ``s`` is the first of ``round(1 / s)`` such folds, so shares are met in steps of
1/k (0.15 is cut as 1/7 of the pairs; k is at most the number of groups and of the largest
class's pairs, which scikit-learn needs), and a part is left empty, as a per-class count would
round it, where no class has enough pairs for one (prepare then refuses the split). The single split cuts test from all pairs, then val
from the rest at ``val / (train + val)``; a K-fold design tests each of K folds once and
carves its val the same way from the other folds. Pairs are sorted by id before the cut and
each cut is seeded from ``data.split.seed`` (and the fold) only, so the roles do not depend
on the order pairs are found in or on unrelated params.
"""

import warnings

import numpy as np

from defectseg.config.data import SplitParams

SPLITS = ("train", "val", "test")


def fold_column(fold: int) -> str:
    """The manifest column holding each pair's role (train, val or test) in ``fold``."""
    return f"fold{fold}"


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def _fold_of_each(classes: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Each position's fold (0..folds-1) of a seeded ``StratifiedGroupKFold``; positions are in id order."""
    from sklearn.model_selection import StratifiedGroupKFold  # imported when needed: it costs every stage that reads SPLITS 1.4 s

    result = np.zeros(len(classes), int)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # a class with fewer groups than folds is spread as well as it can be; prepare reports empty roles itself
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for fold, (_, tested) in enumerate(splitter.split(np.zeros(len(classes)), classes, groups)):
            result[tested] = fold
    return result


def _part(classes: np.ndarray, groups: np.ndarray, share: float, seed: int) -> np.ndarray:
    """A boolean mask of whole groups holding about ``share`` of the positions, stratified by class."""
    counts = np.unique(classes, return_counts=True)[1]
    if share <= 0 or not (np.round(counts * share) > 0).any():
        return np.zeros(len(classes), bool)
    folds = min(max(2, round(1 / share)), len(np.unique(groups)), int(counts.max()))
    if folds < 2:
        return np.zeros(len(classes), bool)
    return _fold_of_each(classes, groups, folds, seed) == 0


def _in_id_order(ids: list[str], classes: list[str], groups: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not len(ids) == len(classes) == len(groups):
        raise ValueError("ids, classes and groups differ in length")
    order = np.array(sorted(range(len(ids)), key=ids.__getitem__), int)
    return order, np.asarray(classes, str)[order], np.asarray(groups, str)[order]


def _roles(test: np.ndarray, val_within_rest: np.ndarray) -> np.ndarray:
    roles = np.full(len(test), "train", dtype=object)
    rest = np.flatnonzero(~test)
    roles[rest[val_within_rest]] = "val"
    roles[test] = "test"
    return roles


def _val_share(params: SplitParams) -> float:
    return params.val / (params.train + params.val) if params.train + params.val > 0 else 0.0


def assign_splits(ids: list[str], classes: list[str], groups: list[str], params: SplitParams) -> list[str]:
    """The role of each id in the single split: whole groups, stratified by class."""
    order, y, g = _in_id_order(ids, classes, groups)
    test = _part(y, g, params.test, _seed(params.seed, 0))
    val = _part(y[~test], g[~test], _val_share(params), _seed(params.seed, 0, 1))
    result = [""] * len(ids)
    for position, role in zip(order, _roles(test, val)):
        result[position] = role
    return result


def assign_folds(ids: list[str], classes: list[str], groups: list[str], folds: int, params: SplitParams) -> list[list[str]]:
    """The role of each id in each of ``folds`` cross-validation folds: ``result[fold][i]``.

    Whole groups are dealt into the folds, stratified by class, so every id is tested in
    exactly one fold; in fold ``f`` the other folds' ids are train, less a val part of whole
    groups carved from them at the ``params.val : params.train`` ratio.
    """
    if folds < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    order, y, g = _in_id_order(ids, classes, groups)
    tested_in = _fold_of_each(y, g, folds, _seed(params.seed, folds))
    result = []
    for fold in range(folds):
        test = tested_in == fold
        val = _part(y[~test], g[~test], _val_share(params), _seed(params.seed, folds, fold + 1))
        roles = [""] * len(ids)
        for position, role in zip(order, _roles(test, val)):
            roles[position] = role
        result.append(roles)
    return result


def groups_across_roles(groups: list[str], roles: list[str]) -> dict[str, list[str]]:
    """The groups whose images hold more than one role, with those roles (empty where every group is whole)."""
    seen: dict[str, set[str]] = {}
    for group, role in zip(groups, roles):
        seen.setdefault(group, set()).add(role)
    return {group: sorted(found) for group, found in sorted(seen.items()) if len(found) > 1}
