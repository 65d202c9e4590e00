"""Multi-process training with torch.distributed: DistributedDataParallel under torchrun.

With ``train.processes > 1`` or ``train.nodes > 1`` the train stage re-executes itself under
torchrun. On one node (``--standalone``) torchrun starts one worker per process on a free
local port. Over several nodes the stage's machine is node 0 and every other machine runs
``defectseg join-training`` with the same run in a checkout at the same commit; all meet at the
c10d rendezvous that ``DEFECTSEG_RENDEZVOUS`` (``host:port``, reachable from every node) names.
Each worker joins the process group (gloo on CPU, NCCL on CUDA) and trains on its shard of
every epoch. One process writes checkpoints, logs and the model: the first process of node 0,
where DVC waits for the outputs. c10d numbers the nodes in its own order (``--node-rank`` is
not kept), so that writer is found by a flag node 0 sets (``DEFECTSEG_WRITER_NODE``), not by
rank. With one process nothing here is used.
"""

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from defectseg.errors import DefectsegError

RENDEZVOUS = "DEFECTSEG_RENDEZVOUS"
WRITER_NODE = "DEFECTSEG_WRITER_NODE"


@dataclass(frozen=True)
class World:
    """This process's place among the training processes; ``writer`` is the rank that writes."""

    rank: int = 0
    size: int = 1
    device: torch.device = torch.device("cpu")
    writer: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == self.writer


def launched_by_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ


def torchrun_command(script: Path | str, arguments: list[str], processes: int, nodes: int, node_rank: int, run_id: str) -> list[str]:
    """The torchrun command line that runs ``script`` with ``processes`` workers on each of ``nodes`` nodes."""
    launch = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={processes}"]
    if nodes == 1:
        return [*launch, "--standalone", str(script), *arguments]
    endpoint = os.environ.get(RENDEZVOUS, "")
    if not endpoint.rpartition(":")[2].isdigit():
        raise DefectsegError(f"train.nodes is {nodes}: set {RENDEZVOUS}=host:port, an address every node reaches (got {endpoint!r})")
    rendezvous = [f"--nnodes={nodes}", f"--node-rank={node_rank}", "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}", f"--rdzv-id={run_id}"]
    return [*launch, *rendezvous, str(script), *arguments]


def relaunch_under_torchrun(processes: int, nodes: int, run_id: str) -> None:
    """Replace this process by torchrun running the same script as node 0 of ``nodes``, the node that writes."""
    command = torchrun_command(sys.argv[0], sys.argv[1:], processes, nodes, 0, run_id)
    os.environ[WRITER_NODE] = "1"
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
    writes_here = os.environ.get(WRITER_NODE) == "1" and os.environ.get("LOCAL_RANK") == "0"
    flags: list[bool] = [False] * dist.get_world_size()
    dist.all_gather_object(flags, writes_here)
    return World(dist.get_rank(), dist.get_world_size(), device, flags.index(True) if any(flags) else 0)


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


def same_on_every_process(value: int, world: World) -> bool:
    """Whether every process holds the same ``value`` (the same answer on all of them)."""
    if world.size == 1:
        return True
    tensor = torch.tensor([value, -value], dtype=torch.int64, device=world.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor[0]) == -int(tensor[1])
