"""Training batches: settings, seeded order and augmentation, and the same batches with or without workers."""

from collections import Counter

import cv2
import numpy as np
import pytest
import torch
from test_training import tiny_split

from conftest import params_with
from defectseg.data.dataset import Normalization, SegmentationDataset, Split
from defectseg.data.synthetic import make_tile
from defectseg.errors import DataError
from defectseg.training.augment import build_augment
from defectseg.training.copy_paste import paste_defect
from defectseg.training.loader import EpochPlan, EpochSampler, build_loader, epoch_items, loader_workers, sample_seed


def dataset():
    split = tiny_split(12, 0)
    return SegmentationDataset(split, Normalization.of(split.images), build_augment(params_with().train.augment))


def test_auto_workers_are_none_on_a_cpu_and_a_number_is_taken_as_is():
    assert loader_workers("auto", torch.device("cpu")) == 0
    assert loader_workers(3, torch.device("cpu")) == 3
    assert 1 <= loader_workers("auto", torch.device("cuda")) <= 8


def test_workers_persist_and_gpu_batches_are_pinned():
    data = dataset()
    loader = build_loader(data, EpochSampler(data.split, EpochPlan()), 4, 2, torch.device("cuda"))
    assert loader.persistent_workers and loader.pin_memory and loader.num_workers == 2 and loader.prefetch_factor == 2
    in_process = build_loader(data, EpochSampler(data.split, EpochPlan()), 4, 0, torch.device("cpu"))
    assert not in_process.persistent_workers and not in_process.pin_memory


def test_sampler_deals_one_epoch_out_to_processes_without_overlap():
    split = tiny_split(12, 0)
    shards = [EpochSampler(split, EpochPlan(), rank, 2) for rank in range(2)]
    for shard in shards:
        shard.set_epoch(7)
    drawn = [list(shard) for shard in shards]
    indices = [index for shard in drawn for index, _, _ in shard]
    assert sorted(indices) == list(range(12)) and len(drawn[0]) == len(drawn[1]) == 6
    assert all(seed == sample_seed(7, index) and source == -1 for shard in drawn for index, seed, source in shard)
    shards[0].set_epoch(8)
    assert [i for i, _, _ in shards[0]] != [i for i, _, _ in drawn[0]]


def test_an_images_augmentation_depends_on_its_seed_only():
    data = dataset()
    first, again, other = data[(3, 11, -1)], data[(3, 11, -1)], data[(3, 12, -1)]
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


def test_workers_deliver_the_same_batches_as_the_main_process():
    data = dataset()
    batches = {}
    for workers in (0, 2):
        sampler = EpochSampler(data.split, EpochPlan())
        loader = build_loader(data, sampler, 4, workers, torch.device("cpu"))
        batches[workers] = []
        for epoch_seed in (1, 2):
            sampler.set_epoch(epoch_seed)
            batches[workers] += [torch.cat([images.flatten(), masks.flatten()]) for images, masks in loader]
    assert len(batches[0]) == 6 and all(torch.equal(a, b) for a, b in zip(batches[0], batches[2]))


def classed_split(counts: dict[str, int], free: int) -> Split:
    """Tiny tiles: ``counts`` defect tiles per class (a 2x2 defect each) and ``free`` defect-free ones."""
    classes = [name for name, count in counts.items() for _ in range(count)] + ["free"] * free
    masks = np.zeros((len(classes), 8, 8), np.uint8)
    masks[: len(classes) - free, 2:4, 2:4] = 1
    return Split(np.zeros_like(masks), masks, np.array([f"t{i:02d}" for i in range(len(classes))]), np.array(classes))


def test_class_balance_one_draws_every_class_alike_with_as_many_draws_in_all():
    split = classed_split({"blowhole": 12, "crack": 3, "fray": 3}, 6)
    items = epoch_items(split, EpochPlan(class_balance=1.0), torch.Generator().manual_seed(0))
    drawn = Counter(split.classes[index] for index, _ in items)
    assert drawn == {"blowhole": 6, "crack": 6, "fray": 6, "free": 6}
    cracks = Counter(index for index, _ in items if split.classes[index] == "crack")
    assert sorted(cracks.values()) == [2, 2, 2], "a class drawn more than it has tiles takes whole passes"


def test_class_balance_zero_takes_each_defect_tile_once_as_before():
    split = classed_split({"blowhole": 12, "crack": 3}, 6)
    items = epoch_items(split, EpochPlan(free_share=0.5), torch.Generator().manual_seed(0))
    assert [index for index, _ in items if split.classes[index] != "free"] == list(range(15))
    assert sum(split.classes[index] == "free" for index, _ in items) == 3 and all(source == -1 for _, source in items)


def test_copy_paste_gives_each_class_its_share_of_the_free_tiles_with_sources_of_that_class():
    split = classed_split({"blowhole": 4, "crack": 2}, 20)
    items = epoch_items(split, EpochPlan(paste_shares={"crack": 0.25, "blowhole": 0.1}), torch.Generator().manual_seed(3))
    pasted = [(index, source) for index, source in items if source >= 0]
    assert all(split.classes[index] == "free" for index, _ in pasted)
    assert Counter(split.classes[source] for _, source in pasted) == {"crack": 5, "blowhole": 2}


def test_copy_paste_naming_a_class_without_train_tiles_is_one_error():
    split = classed_split({"blowhole": 4}, 4)
    with pytest.raises(DataError, match="train.copy_paste.shares names class 'crack', which has no defect tile"):
        epoch_items(split, EpochPlan(paste_shares={"crack": 0.5}), torch.Generator())


def test_a_pasted_tile_carries_the_sources_defect_in_mask_and_pixels():
    tiles = [make_tile(7, i, 32, 0.0) for i in range(40)]
    source = next(t for t in tiles if (t.mask > 0).sum() > 20)
    free = np.full((48, 40), 128, np.uint8)
    for poisson_share in (0.0, 1.0):
        image, mask = paste_defect(free, np.zeros_like(free), source.image, (source.mask > 0).astype(np.uint8), 5, poisson_share)
        assert mask.sum() == (source.mask > 0).sum()
        assert (image != free).any() and (image[mask > 0] != 128).mean() > 0.5
        assert (image[cv2.dilate(mask, np.ones((11, 11), np.uint8)) == 0] == 128).all(), "nothing changes away from the pasted defect"
