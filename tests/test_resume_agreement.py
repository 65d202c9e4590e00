"""Before a multi-node training resumes, its processes agree on the epoch they resume after
(``distributed.same_on_every_process``, called by ``training.fit``): two real gloo processes on
127.0.0.1, one holding a resume state the other lacks, must both see the disagreement."""

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import free_port
from defectseg.training.distributed import World, same_on_every_process

CASES = {"different epochs": [3, 0], "the same epoch": [3, 3]}


def _agree(rank: int, port: int, answers) -> None:
    world = World(rank=rank, size=2, device=torch.device("cpu"))
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world.size)
    try:
        for case, values in CASES.items():
            answers[case, rank] = same_on_every_process(values[rank], world)
    finally:
        dist.destroy_process_group()


def test_two_processes_agree_only_when_they_resume_after_the_same_epoch():
    answers = mp.get_context("spawn").Manager().dict()
    mp.spawn(_agree, args=(free_port(), answers), nprocs=2)
    assert [answers["different epochs", rank] for rank in (0, 1)] == [False, False]
    assert [answers["the same epoch", rank] for rank in (0, 1)] == [True, True]


def test_a_lone_process_always_agrees():
    assert same_on_every_process(5, World())
