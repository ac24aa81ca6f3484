"""PatchCore-refine: registry, cross-fitting, the residual, fit/score shapes, save/load, determinism, bad settings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from detectors import DETECTORS, Detector, TrainingSet, create_detector, load_detector
from detectors.models.refine import PatchCoreRefine
from detectors.training.crossfit import MAP_CLIP, MapScale, cross_fitted_maps, split_folds
from detectors.training.losses import gradient_l2_loss
from synth.data import load_category
from synth.errors import SynthError
from tests.test_detectors_cli import _with_square, run, tiny, write_shards  # noqa: F401  (tiny: a fixture)
from tests.test_detectors_models import one_thread  # noqa: F401  (autouse: one torch thread)
from tiny_defects import normal_image, tiny_training_set, tiny_test_set

SHAPE = (64, 96)  # non-square on purpose
FAST = {"max_steps": 4, "val_every": 2, "batch_size": 4, "precision": "fp32"}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> tuple[PatchCoreRefine, np.ndarray]:
    """A refine detector fitted on 8 normal images and 20 anomalies of SHAPE, and 6 test images."""
    torch.set_num_threads(1)
    detector = create_detector("patchcore-refine", **FAST)
    detector.fit(tiny_training_set(normal=8, anomalies=20, shape=SHAPE))
    return detector, tiny_test_set(3, shape=SHAPE)[0]


def test_registry_finds_it():
    assert DETECTORS["patchcore-refine"] is PatchCoreRefine and PatchCoreRefine.uses_anomalies
    paper = create_detector("patchcore-refine", paper=True).config
    assert (paper.lr, paper.batch_size, paper.weight_refine, paper.patience) == (1e-4, 8, 0.1, 0)


def test_fit_scores_with_the_right_shapes_and_validates(fitted):
    detector, images = fitted
    scores, maps = detector.score(images)
    assert scores.shape == (6,) and scores.dtype == np.float64
    assert maps.shape == (6, *SHAPE) and maps.dtype == np.float32 and np.isfinite(maps).all()
    np.testing.assert_allclose(scores, maps.reshape(6, -1).max(axis=1), rtol=1e-6)  # image score = map maximum
    training = detector.training
    assert training["steps"] == 4 and [step for step, _ in training["validations"]] == [0, 2, 4]
    low, high = training["map_scale"]
    assert high > low


def test_save_load_round_trip_scores_identically(fitted, tmp_path):
    detector, images = fitted
    scores, maps = detector.score(images)
    loaded = load_detector(detector.save(tmp_path / "model"))
    again, again_maps = loaded.score(images)
    np.testing.assert_array_equal(again, scores)
    np.testing.assert_array_equal(again_maps, maps)
    assert json.loads((tmp_path / "model/config.json").read_text())["training"]["steps"] == 4


def test_refined_map_is_the_map_when_the_network_outputs_zero():
    detector = create_detector("patchcore-refine", precision="fp32")
    network = detector._build()
    rng = np.random.default_rng(0)
    images = np.stack([normal_image(rng, SHAPE) for _ in range(2)])
    maps = rng.random((2, *SHAPE), dtype=np.float32)
    scores, final = detector._refine(images, maps)  # a new network's head is zero
    np.testing.assert_array_equal(final, maps)
    np.testing.assert_array_equal(scores, maps.reshape(2, -1).max(axis=1))
    torch.nn.init.normal_(network.head.weight)
    assert not np.allclose(detector._refine(images, maps)[1], maps)


class Recorder(Detector):
    """A fake detector: remembers the images it was fitted on and marks every map with its own number."""

    name = "recorder"
    made: list["Recorder"] = []

    def fit(self, data: TrainingSet) -> None:
        self.seen = np.stack(data.normal)
        self.number = len(Recorder.made)
        Recorder.made.append(self)
        self.fitted = True

    def _score(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        for image in images:  # never an image of its own bank
            assert not (self.seen == image).all(axis=(1, 2, 3)).any()
        return np.zeros(len(images)), np.full(images.shape[:3], self.number, np.float32)

    def state_tensors(self):
        return {}

    def load_state_tensors(self, tensors):
        pass


def test_cross_fitting_never_scores_an_image_with_a_bank_that_holds_it_or_its_source():
    Recorder.made = []
    data = tiny_training_set(normal=7, anomalies=9, shape=(64, 64))
    sources = np.arange(9) % 7  # tiny_training_set makes anomaly j from normal image j % 7
    folds = split_folds(7, np.random.default_rng(0))
    assert sorted(np.bincount(folds)) == [3, 4]
    crossfit = cross_fitted_maps(data, sources, folds, Recorder)
    assert len(Recorder.made) == 2
    for fold, recorder in enumerate(Recorder.made):
        np.testing.assert_array_equal(recorder.seen, np.stack([data.normal[i] for i in np.flatnonzero(folds == fold)]))
    # Every map comes from the bank of the other fold (the map value is the number of the bank).
    np.testing.assert_array_equal(crossfit.normal[:, 0, 0], 1 - folds)
    np.testing.assert_array_equal(crossfit.anomalous[:, 0, 0], 1 - folds[sources])
    with pytest.raises(SynthError, match="at least 2 normal images"):
        split_folds(1, np.random.default_rng(0))


def test_map_scale_and_loss():
    maps = np.stack([np.full((4, 4), 1.0), np.full((4, 4), 3.0)]).astype(np.float32)
    maps[1, 0, 0] = 5.0
    scale = MapScale.of_normal(maps)
    assert scale.low == 2.0 and scale.high == pytest.approx(4.96)
    np.testing.assert_allclose(scale(np.float32([2.0, 4.96, 100.0, 0.0])), [0.0, 1.0, MAP_CLIP, -2 / 2.96], rtol=1e-5)
    target = torch.zeros(1, 1, 4, 4)
    assert gradient_l2_loss(target + 2, target).item() == pytest.approx(0.5 * 4)  # a constant: no gradient term
    edge = torch.zeros(1, 1, 4, 4)
    edge[..., 2:] = 1  # one step along x: dx is 1 on a quarter of the pixels
    assert gradient_l2_loss(edge, target).item() == pytest.approx(0.5 * 0.5 + 0.25 * 0.25)


def test_same_seed_same_scores():
    data = tiny_training_set(normal=4, anomalies=6, shape=(64, 64))
    images = tiny_test_set(2, shape=(64, 64))[0]
    results = []
    for _ in range(2):
        detector = create_detector("patchcore-refine", **{**FAST, "max_steps": 2})
        detector.fit(data)
        results.append(detector.score(images))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


@pytest.mark.parametrize("settings, match", [
    ({"weight_refine": 1.5}, "weight_refine"),
    ({"decoder_scale": 16}, "decoder_scale"),
    ({"max_steps": 0}, "max_steps"),
    ({"anomaly_fraction": 1.0}, "anomaly_fraction"),
])
def test_bad_settings_are_errors(settings, match):
    with pytest.raises(SynthError, match=match):
        create_detector("patchcore-refine", **settings)


def test_patchcore_strides_reach_the_patchcore_whose_maps_are_refined():
    detector = create_detector("patchcore-refine", patchcore_strides=[16, 32], **FAST)
    assert detector.patchcore.config.strides == (16, 32) == detector._new_patchcore().config.strides
    assert create_detector("patchcore-refine").patchcore.config.strides == (8, 16)  # PatchCore's default
    with pytest.raises(SynthError, match="stride"):
        create_detector("patchcore-refine", patchcore_strides=[7], **FAST).fit(
            tiny_training_set(normal=4, anomalies=4, shape=(64, 64)))


def test_fit_needs_anomalies_and_sides_that_are_multiples_of_32():
    with pytest.raises(SynthError, match="synthetic anomalies"):
        create_detector("patchcore-refine", **FAST).fit(TrainingSet(tiny_training_set(shape=(64, 64)).normal))
    with pytest.raises(SynthError, match="multiples of 32"):
        create_detector("patchcore-refine", **FAST).fit(tiny_training_set(normal=4, anomalies=4, shape=(64, 80)))


def test_bench_runs_it(tiny, tmp_path, capsys):  # noqa: F811  (tiny: the fixture)
    rng = np.random.default_rng(5)
    images = load_category(None, "brick", size=64).train_images  # the tiny category's normal images are 0..11
    shards = write_shards(tmp_path / "synth", [_with_square(images[i], rng) for i in range(6)])
    status, stdout, err = run(["bench", "--data", tiny, "--category", "tiles", "--size", 64,
                               "--detectors", "patchcore-refine", "--anomalies", shards,
                               "--set", "patchcore-refine.max_steps=2", "--set", "patchcore-refine.batch_size=4",
                               "--overlays", 0, "--out", tmp_path / "results"], capsys)
    assert status == 0, err
    assert "| patchcore-refine |" in stdout
