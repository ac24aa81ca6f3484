"""Processes started by `accelerate launch` or torchrun: rank, world size, device and barriers.

Uses torch.distributed directly (gloo on CPU, nccl on GPUs), so CPU-only machines can run several
processes too.
"""

from __future__ import annotations

import os
from typing import Any


def world() -> tuple[int, int]:
    """(rank, world size) from the launcher's environment; (0, 1) when not launched."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def launched() -> bool:
    return world()[1] > 1


def device():
    """This process's device: its own GPU (LOCAL_RANK) when there are GPUs, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    return torch.device("cpu")


def _group() -> None:
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def broadcast(value: Any) -> Any:
    """Process 0's ``value``, on every process."""
    import torch.distributed as dist

    _group()
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def barrier() -> None:
    import torch.distributed as dist

    _group()
    dist.barrier()
