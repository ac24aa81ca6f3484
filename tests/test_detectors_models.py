"""PatchCore and SimpleNet on a tiny built-in category, the coreset, save/load, backbones and training data."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from detectors import TrainingSet, create_detector, load_detector
from detectors.evaluation.metrics import image_auroc, pixel_auroc
from detectors.models.patchcore import PatchCore, greedy_coreset
from synth.backbones import create_backbone
from synth.data import load_category
from synth.errors import SynthError

SIZE = 64
SQUARE = 12


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine more threads thrash (and these sizes gain nothing)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def brick() -> tuple[TrainingSet, np.ndarray, np.ndarray, np.ndarray]:
    """16 normal brick crops to train on; 8 held-out crops, 4 of them with a square of gravel pasted in."""
    images = load_category(None, "brick", size=SIZE).train_images
    gravel = load_category(None, "gravel", size=SIZE).train_images[0]
    rng = np.random.default_rng(0)
    test = np.stack(images[100:108])
    masks = np.zeros(test.shape[:3], np.uint8)
    for i in range(4):
        y, x = rng.integers(4, SIZE - SQUARE - 4, 2)
        test[i, y:y + SQUARE, x:x + SQUARE] = gravel[y:y + SQUARE, x:x + SQUARE]
        masks[i, y:y + SQUARE, x:x + SQUARE] = 255
    return TrainingSet(images[:16]), test, masks, np.array([1, 1, 1, 1, 0, 0, 0, 0])


def _separates(detector, brick, min_pixel_auroc: float) -> tuple[np.ndarray, np.ndarray]:
    train, test, masks, labels = brick
    detector.fit(train)
    scores, maps = detector.score(test)
    assert maps.shape == (8, SIZE, SIZE) and maps.dtype == np.float32
    assert image_auroc(labels, scores) == 1.0
    assert pixel_auroc(masks, maps) > min_pixel_auroc
    return scores, maps


def test_patchcore_finds_pasted_square_and_round_trips(brick, tmp_path):
    detector = create_detector("patchcore", coreset_ratio=0.25)
    scores, maps = _separates(detector, brick, 0.95)
    assert len(detector.memory_bank) == int(16 * (SIZE // 8) ** 2 * 0.25)
    detector.save(tmp_path / "model")
    loaded = load_detector(tmp_path / "model")
    assert isinstance(loaded, PatchCore)
    loaded_scores, loaded_maps = loaded.score(brick[1])
    assert np.array_equal(scores, loaded_scores) and np.array_equal(maps, loaded_maps)
    with pytest.raises(SynthError, match="--overwrite"):
        detector.save(tmp_path / "model")


def test_patchcore_paper_reweighting_keeps_the_ranking(brick):
    detector = create_detector("patchcore", coreset_ratio=0.25, reweight_neighbours=3)
    _separates(detector, brick, 0.95)


def test_simplenet_finds_pasted_square_and_round_trips(brick, tmp_path):
    # Small settings so the test takes seconds; the defaults are documented in docs/detectors.md.
    detector = create_detector("simplenet", max_steps=150)  # a few seconds; the default cap is 4000 steps
    scores, maps = _separates(detector, brick, 0.9)
    detector.save(tmp_path / "model")
    loaded_scores, loaded_maps = load_detector(tmp_path / "model").score(brick[1])
    assert np.array_equal(scores, loaded_scores) and np.array_equal(maps, loaded_maps)


def test_simplenet_trains_on_synthetic_anomalies(brick):
    train, test, masks, labels = brick
    anomalies = [(test[i], masks[i]) for i in range(2)]
    detector = create_detector("simplenet", hidden=64, max_steps=3, batch_size=4, val_every=0)
    detector.fit(TrainingSet(train.normal, anomalies, anomaly_fraction=0.5))
    assert detector.fitted and detector.score(test[:1])[0].shape == (1,)


def test_coreset_picks_far_apart_points():
    generator = torch.Generator().manual_seed(0)
    centres = torch.eye(5, 256) * 100
    points = (centres[:, None] + torch.randn(5, 40, 256, generator=generator) * 0.1).reshape(-1, 256)
    chosen = greedy_coreset(points, 5, projection_dim=128, generator=generator)
    assert sorted((chosen // 40).tolist()) == [0, 1, 2, 3, 4]  # one point from each cluster


def test_coreset_each_pick_is_the_farthest_point():
    features = torch.randn(300, 16, generator=torch.Generator().manual_seed(1))
    chosen = greedy_coreset(features, 20, projection_dim=None, start_points=3, generator=torch.Generator().manual_seed(2))
    assert len(set(chosen.tolist())) == 20
    distances = torch.cdist(features, features)
    # As in the official sampler, the selection starts from the mean distance to 3 random points.
    starts = torch.randperm(300, generator=torch.Generator().manual_seed(2))[:3]
    nearest = distances[:, starts].mean(dim=1)
    for index in chosen:
        assert nearest[index] == pytest.approx(nearest.max().item(), rel=1e-4)
        nearest = torch.minimum(nearest, distances[:, index])


def test_score_needs_fit_and_uint8_images():
    detector = create_detector("patchcore")
    with pytest.raises(SynthError, match="not fitted"):
        detector.score(np.zeros((1, 32, 32, 3), np.uint8))
    detector.fitted = True
    with pytest.raises(SynthError, match="uint8"):
        detector.score(np.zeros((1, 32, 32, 3), np.float32))


def test_backbone_taps_and_errors():
    backbone = create_backbone()
    taps = backbone(np.zeros((1, 64, 64, 3), np.uint8), (4, 8, 16, 32))
    assert [tuple(t.shape[1:]) for t in taps] == [(24, 16, 16), (40, 8, 8), (112, 4, 4), (320, 2, 2)]
    assert not backbone.train().training
    with pytest.raises(SynthError, match="unknown backbone"):
        create_backbone("vgg")


def test_folded_batch_norms_and_bf16_keep_the_features(monkeypatch, brick):
    import synth.backbones

    images = np.stack(brick[0].normal[:2])
    folded = create_backbone()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    monkeypatch.setattr(synth.backbones, "fold_batch_norms", lambda module, pairs: None)
    plain = create_backbone()
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    reference = plain(images, (4, 8, 16, 32))

    def check(tolerance: float) -> None:
        for tap, expected in zip(folded(images, (4, 8, 16, 32)), reference):
            assert tap.dtype == torch.float32 and tap.shape == expected.shape
            assert (tap - expected).abs().max() <= tolerance * expected.abs().max()

    check(1e-4)  # folding changes only the float rounding
    folded.bf16 = True
    check(0.1)  # bf16 autocast: the same features to bf16 precision, returned as float32


def test_torchvision_backbones_without_torchvision(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as here, where torchvision is not installed
    for name in ("wide_resnet50_2", "resnet18"):
        with pytest.raises(SynthError, match="needs torchvision"):
            create_backbone(name)


def test_unknown_detector_and_setting():
    with pytest.raises(SynthError, match="unknown detector"):
        create_detector("padim")
    with pytest.raises(SynthError, match="no setting"):
        create_detector("patchcore", coreset=0.1)


def test_training_batches_mix_anomalies():
    normal = [np.zeros((8, 8, 3), np.uint8)] * 10
    anomalous = [(np.ones((8, 8, 3), np.uint8), np.full((8, 8), 255, np.uint8))] * 3
    data = TrainingSet(normal, anomalous, anomaly_fraction=0.25)
    batches = list(data.batches(8, np.random.default_rng(0)))
    assert len(batches) == data.num_batches(8) == 2
    assert [len(b.anomalous) for b in batches] == [2, 2]
    assert sorted(np.concatenate([b.normal for b in batches]).tolist()) == list(range(10))
    with pytest.raises(SynthError, match="needs anomalous"):
        TrainingSet(normal, [], anomaly_fraction=0.5)
