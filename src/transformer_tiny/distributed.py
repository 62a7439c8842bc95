"""Multi-process (data-parallel) training: the process group, ranks, and who writes.

``torchrun --standalone --nproc-per-node=N scripts/train.py ...`` starts ``N`` processes and sets
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in each. :func:`setup` then joins them into one
process group (``gloo`` on CPU, ``nccl`` on GPU, one GPU per process) and training wraps the
model in ``DistributedDataParallel``: every process trains on its own shard of each epoch's
batches, gradients are averaged, and the replicas stay identical. Only rank 0 writes
checkpoints, metrics and logs. Without those variables (or with ``WORLD_SIZE=1``) nothing
changes: one process, no process group.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from .utils import available_cores


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world`` processes, on ``device``."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None  # None: a single process, no process group

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def default_threads(self) -> int:
        """Intra-op threads per process: the cores of this machine shared by its processes
        (0, meaning one per core, for a single process)."""
        if not self.enabled:
            return 0
        cores = available_cores()
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", self.world))
        return max(1, cores // max(1, local_world))

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` in ``DistributedDataParallel`` (the model itself for a single process)."""
        if not self.enabled:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def barrier(self) -> None:
        """Wait until every process gets here (nothing for a single process)."""
        if self.enabled:
            if self.backend == "nccl":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over all processes (the values for a single one)."""
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()


def env_world() -> tuple[int, int, int]:
    """``(rank, local_rank, world)`` from torchrun's environment variables (``(0, 0, 1)``
    when they are not set)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as e:
        raise ValueError(f"bad torchrun environment (RANK, LOCAL_RANK, WORLD_SIZE): {e}") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"bad torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return rank, local_rank, world


def setup(device: torch.device) -> DistContext:
    """Join the process group that torchrun set up, if any; returns this process's context.

    ``device`` is the one asked for (``pick_device``): on CUDA each process takes GPU
    ``LOCAL_RANK`` and the backend is ``nccl``; on CPU it is ``gloo``. Calling it again in the
    same process reuses the group. :func:`process_group` also leaves it.
    """
    rank, local_rank, world = env_world()
    if world == 1:
        return DistContext(device=device)
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        # DistributedDataParallel imports torch._dynamo when first built; imported after the
        # group exists, it keeps the group alive past destroy_process_group, and gloo's threads
        # then run until the interpreter exits, where they can abort the process. Before, not.
        importlib.import_module("torch._dynamo")
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, device,
                       dist.get_backend())


@contextmanager
def process_group(device: torch.device) -> Iterator[DistContext]:
    """:func:`setup` for the length of a ``with`` block, then leave the group it joined.

    The group is destroyed explicitly, after a last barrier when the block ends normally, while
    the interpreter is still alive: left to the end of the process, ``gloo``'s worker threads
    can abort the process as it exits. Let go of the ``DistributedDataParallel`` wrapper inside
    the block (it holds the group): the group and its threads then end with the block.
    """
    joined = not dist.is_initialized()
    ctx = setup(device)
    try:
        yield ctx
        ctx.barrier()
    finally:
        if joined and ctx.enabled:
            cleanup()


def cleanup() -> None:
    """Leave the process group, if this process is in one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
