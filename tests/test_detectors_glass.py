"""GLASS: the GAS truncation ring, the distribution judgement, separation of an obvious defect, save/load, seeds."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from detectors import create_detector
from detectors.models.glass import MANIFOLD_RING, Ring, judge_hypersphere
from synth.errors import SynthError
from tiny_defects import check_separates_and_round_trips, tiny_test_set, tiny_training_set

FAST = {"epochs": 3, "lr": 1e-3, "batch_size": 8, "val_every": 1, "precision": "fp32", "ascent_steps": 5}


def _distances(points: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    return (points - anchors).norm(dim=1)


def test_gas_moves_noisy_features_out_to_the_hypersphere_ring():
    torch.manual_seed(0)
    detector = create_detector("glass", precision="fp32", ascent_steps=20)
    normal = torch.randn(64, detector.dim) * 0.1
    centre = torch.zeros_like(normal)
    radius = 2 * _distances(normal, centre).max()  # every noisy point starts inside the ring
    shifted = detector.global_anomalies(normal, Ring(centre, radius, 2 * radius))
    distances = _distances(shifted, centre)
    assert distances.min() >= radius * (1 - 1e-5)
    assert distances.max() <= 2 * radius * (1 + 1e-5)
    assert not shifted.requires_grad


def test_gas_keeps_manifold_anomalies_in_a_ring_around_their_normal_feature():
    torch.manual_seed(0)
    detector = create_detector("glass", precision="fp32", ascent_steps=10, noise_std=1.0)
    normal = torch.randn(64, detector.dim)
    distances = _distances(detector.global_anomalies(normal, Ring(normal, *MANIFOLD_RING)), normal)
    assert distances.min() >= MANIFOLD_RING[0] * (1 - 1e-5)
    assert distances.max() <= MANIFOLD_RING[1] * (1 + 1e-5)


def test_ring_projection_only_clamps_the_distance():
    anchors = torch.zeros(3, 2)
    points = torch.tensor([[0.1, 0.0], [0.0, 3.0], [-5.0, 0.0]])
    projected = Ring(anchors, 1.0, 2.0).project(points)
    torch.testing.assert_close(projected, torch.tensor([[1.0, 0.0], [0.0, 2.0], [-2.0, 0.0]]))


def test_judgement_tells_an_aligned_object_from_a_texture():
    stripes = np.full((256, 256, 3), 120, np.uint8)
    stripes[:, ::2] = 140  # fine texture: the blur leaves a flat mean image
    assert not judge_hypersphere([stripes] * 4)
    bottle = np.full((256, 256, 3), 30, np.uint8)
    cv2.circle(bottle, (128, 128), 80, (220, 220, 220), -1)  # the same centred object in every image
    assert judge_hypersphere([bottle] * 4)


def test_glass_separates_an_obvious_defect_and_round_trips(tmp_path):
    check_separates_and_round_trips(create_detector("glass", **FAST), tmp_path)


def test_glass_scores_are_probabilities_and_maps_have_the_input_size():
    torch.set_num_threads(1)
    detector = create_detector("glass", **FAST)
    detector.fit(tiny_training_set())
    assert detector.training["distribution"] in ("hypersphere", "manifold")
    images, _, _ = tiny_test_set(count=2)
    scores, maps = detector.score(images)
    assert scores.shape == (4,) and maps.shape == images.shape[:3]
    assert ((0 <= scores) & (scores <= 1)).all() and ((0 <= maps) & (maps <= 1)).all()
    wide = np.concatenate([images[:, :32], images[:, :32]], axis=2)[:, :, :64]  # 32 x 64 inputs
    wide_scores, wide_maps = detector.score(wide)
    assert wide_scores.shape == (4,) and wide_maps.shape == (4, 32, 64)


def test_glass_is_deterministic_for_a_seed():
    torch.set_num_threads(1)
    images, _, _ = tiny_test_set(count=2)
    runs = []
    for _ in range(2):
        detector = create_detector("glass", **{**FAST, "epochs": 1, "seed": 3})
        detector.fit(tiny_training_set(normal=8, anomalies=8))
        runs.append(detector.score(images))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_bad_glass_settings_are_one_line_errors():
    with pytest.raises(SynthError, match="radius"):
        create_detector("glass", radius=1.5)
    with pytest.raises(SynthError, match="distribution"):
        create_detector("glass", distribution="torus")
    with pytest.raises(SynthError, match="noise_std"):
        create_detector("glass", noise_std=0)
    with pytest.raises(SynthError, match="synthetic anomalies"):
        from detectors.data.training import TrainingSet

        create_detector("glass", **FAST).fit(TrainingSet(tiny_training_set().normal))
