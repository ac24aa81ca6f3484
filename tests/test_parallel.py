"""Data-parallel training: rows shared out, gradients averaged, same seed same weights, failures surface."""

import numpy as np
import pytest
import torch
import torch.distributed as dist

from detectors import create_detector
from detectors.parallel import average_gradients, run_data_parallel, share
from tests.tiny_defects import tiny_training_set


def test_share_splits_a_batch_into_disjoint_covering_parts():
    rows = np.array([5, 3, 9, 1, 7])
    parts = [share(rows, rank, 2) for rank in range(2)]
    assert sorted(np.concatenate(parts).tolist()) == sorted(rows.tolist())
    assert set(parts[0]).isdisjoint(parts[1])
    assert share(rows, 0, 1).tolist() == rows.tolist()


def test_gradients_are_averaged_over_processes():
    def loop(rank: int, world: int) -> list[float]:
        weight = torch.nn.Parameter(torch.zeros(3))
        (weight * torch.tensor([1.0, 2.0, 3.0]) * (rank + 1)).sum().backward()  # rank 0: g, rank 1: 2g
        average_gradients([weight], world)
        gathered = [torch.zeros(3) for _ in range(world)]
        dist.all_gather(gathered, weight.grad)  # every rank must hold the same mean
        assert all(torch.equal(g, gathered[0]) for g in gathered)
        return weight.grad.tolist()

    assert run_data_parallel(2, loop) == pytest.approx([1.5, 3.0, 4.5])


def test_a_failing_process_is_reported():
    def loop(rank: int, world: int) -> None:
        if rank == 1:
            raise ValueError("worker broke")
        dist.barrier()

    with pytest.raises(Exception):
        run_data_parallel(2, loop)


def test_realnet_trains_in_two_processes_deterministically():
    data = tiny_training_set(normal=8, anomalies=16)
    states = []
    for _ in range(2):
        detector = create_detector("realnet", epochs=2, batch_size=8, val_every=1, disc_width=16, afs_samples=8,
                                   processes=2, precision="fp32")
        detector.fit(data)
        assert detector.training["processes"] == 2 and detector.training["steps"] == detector.training["max_steps"]
        states.append(detector.state_tensors())
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][key], states[1][key]) for key in states[0])
    untrained = create_detector("realnet", disc_width=16, afs_samples=8).state_tensors()
    assert any(not torch.equal(states[0][key], untrained[key]) for key in untrained if key.startswith("recon"))
