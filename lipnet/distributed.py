"""Helpers for runs under `torchrun` (DistributedDataParallel), pure torch.distributed.

A single process (no torchrun, or WORLD_SIZE=1) never initialises a process
group: every helper is then a no-op (`world()` is 1, `is_main()` is True,
`gather_rows` returns its rows), so library code can call them
unconditionally. Under torchrun, `init_from_env` reads RANK, WORLD_SIZE and
LOCAL_RANK and joins the group: nccl on a GPU, gloo on the CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


def resolve_device(device: str | None) -> str:
    """ "cpu", "cuda" or "auto" (a GPU if there is one) → "cpu" or "cuda"."""
    device = device or "auto"
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}; choose cpu, cuda or auto")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but torch sees no GPU")
    return device


def init_from_env(device: str | None = "auto") -> torch.device:
    """Join torchrun's process group if WORLD_SIZE > 1; the device of this rank.

    Single process: no group, the device is returned as is. Under torchrun
    with CUDA, each rank uses GPU LOCAL_RANK (nccl); on the CPU, gloo.
    """
    kind = resolve_device(device)
    size = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if kind == "cuda":
        index = local if size > 1 else torch.cuda.current_device()
        torch.cuda.set_device(index)
        chosen = torch.device("cuda", index)
    else:
        chosen = torch.device("cpu")
    if size > 1 and not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if kind == "cuda" else "gloo",
            rank=int(os.environ["RANK"]),
            world_size=size,
        )
    return chosen


def active() -> bool:
    """Whether a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world() -> int:
    """The number of processes (1 without a process group)."""
    return dist.get_world_size() if active() else 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    """True on rank 0 (and in a single process): the one that logs and writes."""
    return rank() == 0


def shard(n: int, rank: int, world: int) -> range:
    """Rank's contiguous share of range(n): sizes differ by at most one,
    the shards in rank order cover range(n) exactly once."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in a world of {world}")
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))


def gather_rows(rows: Sequence[Any]) -> list[Any]:
    """Every rank's rows, on every rank, ordered by their `index` attribute.

    Uses all_gather_object (pickled), so the rows may hold CPU tensors.
    """
    if not active():
        return list(rows)
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, list(rows))
    return sorted((r for part in parts for r in part), key=lambda r: r.index)


def all_mean(value: float) -> float:
    """The mean of a number over the ranks (the number itself in one process)."""
    if not active():
        return value
    t = torch.tensor([float(value)], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def broadcast_state(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers (e.g. power-iteration vectors `u`)
    to every rank, and drop eval-mode weight caches so none is stale."""
    if active():
        with torch.no_grad():
            for t in _state(module):
                dist.broadcast(t.data, src=0)
    drop_caches(module)


def drop_caches(module: nn.Module) -> None:
    """Forget the eval-mode constrained weights, to be recomputed on next use."""
    for m in module.modules():
        if hasattr(m, "_cache"):
            m._cache = None
            m._cache_key = None


def _state(module: nn.Module) -> Iterable[torch.Tensor]:
    yield from module.parameters()
    yield from module.buffers()


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if active():
        dist.barrier()


def cleanup() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
