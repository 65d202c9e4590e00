"""Stratified, seeded train/val/test split.

Each class is shuffled by a generator seeded only from the split seed and the class
name, so the split is the same for the same seed and ids whatever other params say.
"""

import zlib

import numpy as np

from defectseg.params import SplitParams

SPLITS = ("train", "val", "test")


def assign_splits(ids: list[str], classes: list[str], params: SplitParams) -> list[str]:
    """Return the split name of each id, stratified by its class."""
    if len(ids) != len(classes):
        raise ValueError("ids and classes differ in length")
    result = [""] * len(ids)
    for defect_class in sorted(set(classes)):
        members = sorted((ids[i], i) for i in range(len(ids)) if classes[i] == defect_class)
        rng = np.random.default_rng([params.seed, zlib.crc32(defect_class.encode())])
        order = rng.permutation(len(members))
        n_val = round(len(members) * params.val)
        n_test = round(len(members) * params.test)
        for rank, position in enumerate(order):
            split = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
            result[members[position][1]] = split
    return result
