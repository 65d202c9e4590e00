"""Multi-process training with torch.distributed: DistributedDataParallel under torchrun.

With ``train.processes > 1`` the train stage re-executes itself under torchrun
(``python -m torch.distributed.run --standalone``), which starts one worker per process
on a free local port. Each worker joins the process group (gloo on CPU, NCCL on CUDA),
trains on its shard of every epoch, and only rank 0 writes checkpoints, logs and the
model. With one process nothing here is used.
"""

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ


def relaunch_under_torchrun(processes: int) -> None:
    """Replace this process by torchrun running the same script with ``processes`` workers."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", *sys.argv]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)


def join(device: torch.device) -> World:
    """Join the process group when started by torchrun with several workers."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(device=device)
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), device)


def leave(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def mean_over_processes(value: float, world: World) -> float:
    """The mean of ``value`` over every process (the value itself with one process)."""
    if world.size == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=world.device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / world.size
