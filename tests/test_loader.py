"""Training batches: settings, seeded order and augmentation, and the same batches with or without workers."""

import torch

from conftest import params_with
from defectseg.augment import build_augment
from defectseg.dataset import Normalization, SegmentationDataset
from defectseg.loader import EpochSampler, build_loader, loader_workers, sample_seed
from test_training import tiny_split


def dataset():
    split = tiny_split(12, 0)
    return SegmentationDataset(split, Normalization.of(split.images), build_augment(params_with().train.augment))


def test_auto_workers_are_none_on_a_cpu_and_a_number_is_taken_as_is():
    assert loader_workers("auto", torch.device("cpu")) == 0
    assert loader_workers(3, torch.device("cpu")) == 3
    assert 1 <= loader_workers("auto", torch.device("cuda")) <= 8


def test_workers_persist_and_gpu_batches_are_pinned():
    data = dataset()
    loader = build_loader(data, EpochSampler(data.split, 1.0), 4, 2, torch.device("cuda"))
    assert loader.persistent_workers and loader.pin_memory and loader.num_workers == 2 and loader.prefetch_factor == 2
    in_process = build_loader(data, EpochSampler(data.split, 1.0), 4, 0, torch.device("cpu"))
    assert not in_process.persistent_workers and not in_process.pin_memory


def test_sampler_deals_one_epoch_out_to_processes_without_overlap():
    split = tiny_split(12, 0)
    shards = [EpochSampler(split, 1.0, rank, 2) for rank in range(2)]
    for shard in shards:
        shard.set_epoch(7)
    drawn = [list(shard) for shard in shards]
    indices = [index for shard in drawn for index, _ in shard]
    assert sorted(indices) == list(range(12)) and len(drawn[0]) == len(drawn[1]) == 6
    assert all(seed == sample_seed(7, index) for shard in drawn for index, seed in shard)
    shards[0].set_epoch(8)
    assert [i for i, _ in shards[0]] != [i for i, _ in drawn[0]]


def test_an_images_augmentation_depends_on_its_seed_only():
    data = dataset()
    first, again, other = data[(3, 11)], data[(3, 11)], data[(3, 12)]
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


def test_workers_deliver_the_same_batches_as_the_main_process():
    data = dataset()
    batches = {}
    for workers in (0, 2):
        sampler = EpochSampler(data.split, 1.0)
        loader = build_loader(data, sampler, 4, workers, torch.device("cpu"))
        batches[workers] = []
        for epoch_seed in (1, 2):
            sampler.set_epoch(epoch_seed)
            batches[workers] += [torch.cat([images.flatten(), masks.flatten()]) for images, masks in loader]
    assert len(batches[0]) == 6 and all(torch.equal(a, b) for a, b in zip(batches[0], batches[2]))
