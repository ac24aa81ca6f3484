"""Data-parallel training on CPU cores with torch.distributed (gloo).

``run_data_parallel(processes, loop)`` runs ``loop(rank, world)`` here as rank 0 and in
``processes - 1`` forked workers that share everything built before the fork (cached features,
networks, optimiser, random state), each with one torch thread per core it stands for. Every rank
takes its share of each batch (``share``) and ``average_gradients`` makes the update the mean over
the whole batch, so all ranks keep identical weights; rank 0's result is returned. Batch norms see
their rank's share only (no SyncBatchNorm), which is the usual data-parallel departure.
"""

from __future__ import annotations

import datetime
import multiprocessing
import os
import tempfile
from typing import Callable, Sequence, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from synth.errors import SynthError

T = TypeVar("T")
TIMEOUT = datetime.timedelta(minutes=10)  # a rank waiting longer than this for the others fails


def share(rows: Sequence[int] | np.ndarray, rank: int, world: int) -> np.ndarray:
    """Rank ``rank``'s rows of a batch: every ``world``-th row starting at ``rank``."""
    return np.asarray(rows)[rank::world]


def average_gradients(parameters: Sequence[torch.nn.Parameter], world: int) -> None:
    """Replace every gradient by its mean over the ranks (one all-reduce of all gradients)."""
    if world == 1:
        return
    gradients = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = torch.cat([g.reshape(-1) for g in gradients])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for parameter, gradient in zip(parameters, gradients):
        count = gradient.numel()
        parameter.grad = flat[offset:offset + count].view_as(gradient)
        offset += count


def broadcast_flag(flag: bool, world: int) -> bool:
    """Rank 0's ``flag`` on every rank."""
    if world == 1:
        return flag
    value = torch.tensor([int(flag)])
    dist.broadcast(value, src=0)
    return bool(value.item())


def _worker(loop: Callable[[int, int], object], rank: int, world: int, store: str, threads: int) -> None:
    torch.set_num_threads(threads)
    dist.init_process_group("gloo", store=dist.FileStore(store, world), rank=rank, world_size=world, timeout=TIMEOUT)
    try:
        loop(rank, world)
    finally:
        dist.destroy_process_group()


def run_data_parallel(processes: int, loop: Callable[[int, int], T]) -> T:
    """``loop(0, processes)`` here and ``loop(rank, processes)`` in forked workers; rank 0's result."""
    if processes == 1:
        return loop(0, 1)
    if processes < 1:
        raise SynthError(f"processes must be at least 1, got {processes}")
    if dist.is_initialized():
        raise SynthError("processes > 1 cannot be used inside another torch.distributed job")
    threads = max(1, torch.get_num_threads() // processes)
    context = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="synth-dp-") as folder:
        store = os.path.join(folder, "store")
        workers = [context.Process(target=_worker, args=(loop, rank, processes, store, threads), daemon=True)
                   for rank in range(1, processes)]
        for worker in workers:
            worker.start()
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        dist.init_process_group("gloo", store=dist.FileStore(store, processes), rank=0, world_size=processes,
                                timeout=TIMEOUT)
        try:
            result = loop(0, processes)
        finally:
            dist.destroy_process_group()
            torch.set_num_threads(previous)
            for worker in workers:
                worker.join(timeout=60)
                if worker.is_alive():
                    worker.terminate()
        failed = [worker.exitcode for worker in workers if worker.exitcode]
        if failed:
            raise SynthError(f"a data-parallel training process failed (exit code {failed[0]})")
    return result
