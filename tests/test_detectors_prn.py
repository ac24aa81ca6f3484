"""PRN: prototypes, multi-size attention, separation of an obvious defect, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detectors import create_detector
from detectors.models.prn import MultiScaleFusion, MultiSizeAttention, Prototypes
from detectors.training.losses import binary_focal_loss
from synth.errors import SynthError
from tiny_defects import SIZE, check_separates_and_round_trips, tiny_training_set

FAST = {"epochs": 4, "lr": 1e-3, "batch_size": 8, "val_every": 2, "precision": "fp32"}


def test_residual_is_taken_to_the_nearest_prototype():
    prototypes = Prototypes([(2, 3, 4, 4)])
    prototypes.scale0.copy_(torch.stack([torch.zeros(3, 4, 4), torch.full((3, 4, 4), 10.0)]))
    feature = torch.full((1, 3, 4, 4), 9.0)
    feature[0, 0, 1, 1] = 14.0
    residual = prototypes.residuals([feature])[0]
    expected = torch.ones(1, 3, 4, 4)
    expected[0, 0, 1, 1] = 16.0
    torch.testing.assert_close(residual, expected)


def test_multi_size_attention_and_fusion_keep_shapes():
    attention = MultiSizeAttention(channels=6, shape=(16, 16))
    assert attention.patches == [(16, 16), (8, 8), (4, 4), (2, 2)]
    assert attention(torch.randn(2, 6, 16, 16)).shape == (2, 6, 16, 16)
    wide = MultiSizeAttention(channels=6, shape=(8, 24))  # a non-square map: n x n patches of (H/n) x (W/n)
    assert wide.patches == [(8, 24), (4, 12), (2, 6), (1, 3)]
    assert wide(torch.randn(2, 6, 8, 24)).shape == (2, 6, 8, 24)
    fusion = MultiScaleFusion((24, 40, 112))
    maps = [torch.randn(1, 24, 32, 32), torch.randn(1, 40, 16, 16), torch.randn(1, 112, 8, 8)]
    assert [m.shape for m in fusion(maps)] == [m.shape for m in maps]


def test_focal_loss_down_weights_easy_pixels():
    masks = torch.tensor([1.0, 0.0])
    easy, hard = torch.tensor([4.0, -4.0]), torch.tensor([-1.0, 1.0])
    assert binary_focal_loss(easy, masks) < 1e-3 * binary_focal_loss(hard, masks)


def test_prototypes_are_a_tenth_of_the_normal_images():
    detector = create_detector("prn", **FAST)
    data = tiny_training_set(normal=20, anomalies=4)
    detector.prepare(data, np.zeros(4, int))
    shapes = [tuple(p.shape) for p in detector.network.prototypes.maps()]
    assert shapes == [(2, 24, SIZE // 4, SIZE // 4), (2, 40, SIZE // 8, SIZE // 8), (2, 112, SIZE // 16, SIZE // 16)]


def test_prn_separates_an_obvious_defect_and_round_trips(tmp_path):
    check_separates_and_round_trips(create_detector("prn", **FAST), tmp_path)


def test_prn_needs_synthetic_anomalies_and_a_fitting_size():
    from detectors.data.training import TrainingSet

    with pytest.raises(SynthError, match="synthetic anomalies"):
        create_detector("prn", **FAST).fit(TrainingSet(tiny_training_set().normal))
    with pytest.raises(SynthError, match="no network"):
        create_detector("prn").networks()
