"""RealNet: feature selection, residual selection, separation of an obvious defect, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detectors import create_detector
from detectors.models.realnet import RealNet, ResidualSelection, afs_channels, afs_losses, rrs_channels
from synth.errors import SynthError
from tiny_defects import check_separates_and_round_trips, tiny_training_set

FAST = {"epochs": 6, "lr": 1e-3, "disc_width": 16, "afs_samples": 16, "batch_size": 8, "val_every": 3,
        "precision": "fp32"}  # fp32: the same numbers on CPUs with and without bf16 units


def test_afs_prefers_channels_that_respond_inside_the_mask():
    generator = torch.Generator().manual_seed(0)
    normal = torch.randn(4, 6, 8, 8, generator=generator)
    masks = torch.zeros(4, 1, 16, 16)
    masks[:, :, 4:12, 4:12] = 1
    anomalous = normal + 0.3 * torch.randn(4, 6, 8, 8, generator=generator)  # noise everywhere
    anomalous[:, [1, 4], 2:6, 2:6] += 5.0  # channels 1 and 4 change exactly where the mask is
    losses = afs_losses(anomalous, normal, masks)
    assert set(losses.topk(2, largest=False).indices.tolist()) == {1, 4}


def test_afs_counts_scale_with_the_backbone():
    assert afs_channels((256, 512, 1024, 2048), (1.0, 1.0, 0.5, 0.125)) == (256, 512, 512, 256)
    assert rrs_channels((256, 512, 512, 256), None) == 512  # the official r for wide_resnet50_2
    assert afs_channels((24, 40, 112, 320), (1.0, 1.0, 0.5, 0.125)) == (24, 40, 56, 40)
    with pytest.raises(SynthError):
        rrs_channels((4, 4), 3)


def test_afs_keeps_the_requested_channel_counts():
    detector = RealNet(RealNet.config_class(afs_ratios=(0.5, 0.25, 0.1, 0.05), afs_samples=8, batch_size=8))
    data = tiny_training_set(normal=4, anomalies=8)
    detector.prepare(data, np.arange(8) % 4)
    for indices, count, width in zip(detector.afs.indices(), detector.counts, (24, 40, 112, 320)):
        assert len(indices) == count and len(set(indices.tolist())) == count
        assert torch.all(indices[1:] > indices[:-1]) and 0 <= indices.min() and indices.max() < width


def test_rrs_selects_half_by_max_and_half_by_mean():
    rrs = ResidualSelection(in_channels=10, selected=4, width=8, residual_layers=1).eval()
    residual = torch.full((2, 10, 8, 8), 0.1)
    residual[:, 7, 0, 0] = 50.0  # one strong peak: top by max pooling
    residual[:, 3] = 2.0  # high everywhere: top by mean pooling
    index = rrs.select(residual)
    assert index.shape == (2, 4)
    assert (index[:, 0] == 7).all() and (index[:, 2] == 3).all()
    assert rrs(list(residual.split([5, 5], dim=1)), (16, 16)).shape == (2, 2, 16, 16)


def test_realnet_separates_an_obvious_defect_and_round_trips(tmp_path):
    check_separates_and_round_trips(create_detector("realnet", **FAST), tmp_path)


def test_realnet_rejects_sizes_its_unets_cannot_take():
    detector = create_detector("realnet", **FAST)
    data = tiny_training_set(normal=4, anomalies=4)
    data.normal[:] = [image[:96, :96] for image in data.normal]
    data.anomalous[:] = [(image[:96, :96], mask[:96, :96]) for image, mask in data.anomalous]
    with pytest.raises(SynthError, match="multiples of 128"):
        detector.fit(data)


def test_realnet_needs_synthetic_anomalies():
    from detectors.data.training import TrainingSet

    with pytest.raises(SynthError, match="synthetic anomalies"):
        create_detector("realnet", **FAST).fit(TrainingSet(tiny_training_set().normal))
