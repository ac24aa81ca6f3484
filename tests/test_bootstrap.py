"""Bootstrap intervals of image and pixel AUROC over test images, and paired AUROC differences."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from detectors.evaluation import bench
from detectors.evaluation.bench import Result, evaluate_on_test_set, markdown_table
from detectors.evaluation.metrics import (_binned_auroc, _pixel_histograms, bootstrap_intervals, image_auroc,
                               paired_difference_interval, paired_difference_interval_over_seeds, pixel_auroc,
                               resample_counts)
from synth.errors import SynthError


def synthetic_test_set(images: int, side: int = 16, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Labels (every other image anomalous), noisy image scores, masks with one square each, maps lifted inside it."""
    rng = np.random.default_rng(seed)
    labels = np.arange(images) % 2
    masks = np.zeros((images, side, side), np.uint8)
    for index in np.flatnonzero(labels):
        y, x = rng.integers(0, side - 4, 2)
        masks[index, y:y + 4, x:x + 4] = 255
    maps = rng.normal(size=masks.shape) + 1.5 * (masks > 0)
    scores = labels + rng.normal(scale=1.0, size=images)
    return labels, scores, masks, maps


def width(interval: tuple[float, float]) -> float:
    return interval[1] - interval[0]


def test_intervals_contain_the_point_estimates():
    labels, scores, masks, maps = synthetic_test_set(60)
    intervals = bootstrap_intervals(labels, scores, masks, maps)
    low, high = intervals["image_auroc"]
    assert low < image_auroc(labels, scores) < high
    low, high = intervals["pixel_auroc"]
    assert low < pixel_auroc(masks, maps) < high


def test_intervals_narrow_with_more_images():
    few = bootstrap_intervals(*synthetic_test_set(40, side=8))
    many = bootstrap_intervals(*synthetic_test_set(400, side=8))
    for key in ("image_auroc", "pixel_auroc"):
        assert width(many[key]) < 0.6 * width(few[key])


def test_same_seed_same_intervals():
    data = synthetic_test_set(30)
    assert bootstrap_intervals(*data, seed=3) == bootstrap_intervals(*data, seed=3)
    assert bootstrap_intervals(*data, seed=3) != bootstrap_intervals(*data, seed=4)
    labels, scores = data[:2]
    assert paired_difference_interval(labels, scores, -scores, seed=5) == paired_difference_interval(
        labels, scores, -scores, seed=5)


def test_resamples_keep_both_classes():
    labels = np.r_[np.zeros(29, int), 1]  # a single anomalous image
    counts = resample_counts(labels, 500, seed=1)
    assert counts.shape == (500, 30)
    assert (counts[:, :29].sum(axis=1) == 29).all() and (counts[:, 29] == 1).all()
    assert len(np.unique(counts[:, :29], axis=0)) > 400  # the normal images are resampled
    _, scores, masks, maps = synthetic_test_set(30)
    masks[labels == 0] = 0
    intervals = bootstrap_intervals(labels, scores, masks, maps)
    assert all(np.isfinite(interval).all() for interval in intervals.values())


@pytest.mark.parametrize("maps_kind", ["continuous", "quantised", "anomalies_in_the_tail"])
def test_binned_pixel_auroc_is_close_to_the_exact_one(maps_kind):
    _, _, masks, maps = synthetic_test_set(20, side=64, seed=2)
    if maps_kind == "quantised":  # many ties, as in 8-bit maps
        maps = np.round(maps * 20) / 20
    if maps_kind == "anomalies_in_the_tail":
        maps = maps + 4.0 * (masks > 0)
    anomalous, normal = _pixel_histograms(masks, maps)
    assert _binned_auroc(anomalous.sum(axis=0), normal.sum(axis=0)) == pytest.approx(pixel_auroc(masks, maps), abs=2e-3)


def test_a_detector_against_itself_differs_by_exactly_zero():
    labels, scores, _, _ = synthetic_test_set(50)
    assert paired_difference_interval(labels, scores, scores) == (0.0, 0.0, 0.0)
    estimate, low, high = paired_difference_interval_over_seeds(labels, [scores, -scores], [scores, -scores])
    assert estimate == 0.0 and low < 0.0 < high  # the seeds are drawn for each side on its own


def test_a_clearly_better_detector_has_an_interval_above_zero():
    labels, scores, _, _ = synthetic_test_set(50)
    better = labels + np.random.default_rng(7).normal(scale=0.3, size=len(labels))
    estimate, low, high = paired_difference_interval(labels, better, scores)
    assert estimate == pytest.approx(image_auroc(labels, better) - image_auroc(labels, scores))
    assert 0 < low < estimate < high


def test_seed_averaging_is_inside_every_resample():
    labels, scores, _, _ = synthetic_test_set(50)
    one_seed = paired_difference_interval(labels, scores, -scores)
    assert paired_difference_interval_over_seeds(labels, [scores], [-scores]) == one_seed
    rng = np.random.default_rng(8)
    seeds = [labels + rng.normal(scale=spread, size=len(labels)) for spread in (0.5, 1.0, 2.0)]
    estimate, low, high = paired_difference_interval_over_seeds(labels, seeds, [scores])
    mean_a = np.mean([image_auroc(labels, seed) for seed in seeds])
    assert estimate == pytest.approx(mean_a - image_auroc(labels, scores))
    assert low < estimate < high


def test_seeds_that_disagree_widen_the_interval():
    labels, scores, _, _ = synthetic_test_set(50)
    rng = np.random.default_rng(9)
    good = labels + rng.normal(scale=0.2, size=len(labels))
    poor = rng.normal(size=len(labels))
    steady = paired_difference_interval_over_seeds(labels, [good, good, good], [good])
    unsteady = paired_difference_interval_over_seeds(labels, [good, poor, good], [good])
    assert steady[1] <= 0.0 <= steady[2] and steady[2] - steady[1] < 0.05
    # all three draws land on the poor seed in about 1 resample of 27, beyond the 2.5 % tail
    assert unsteady[1] < image_auroc(labels, poor) - image_auroc(labels, good) + 0.1
    assert unsteady[2] - unsteady[1] > 5 * (steady[2] - steady[1])


@pytest.mark.parametrize("arguments, message", [
    ({"resamples": 0}, "at least one resample"),
    ({"confidence": 1.0}, "confidence"),
    ({"labels": np.ones(10, int)}, "both normal and anomalous"),
])
def test_bad_bootstrap_arguments(arguments, message):
    labels, scores, masks, maps = synthetic_test_set(10)
    call = {"labels": labels, "scores": scores, "masks": masks, "maps": maps, **arguments}
    with pytest.raises(SynthError, match=message):
        bootstrap_intervals(**call)


@dataclass
class FakeConfig:
    size: int = 16


class FakeDetector:
    """Scores the fixed maps of ``test_set``; its training summary is passed through to the Result."""

    name = "fake"

    def __init__(self, scores: np.ndarray, maps: np.ndarray) -> None:
        self.config, self.scores, self.maps = FakeConfig(), scores, maps
        self.training = {"steps": 3, "max_steps": 5, "best_step": 2, "stopped_early": True, "validations": []}

    def score(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.scores, self.maps


def test_results_carry_intervals_image_scores_and_training():
    labels, scores, masks, maps = synthetic_test_set(12)
    test = bench.TestSet(np.zeros((12, 16, 16, 3), np.uint8), masks, labels, ["good", "square"] * 6)
    result, _ = evaluate_on_test_set(FakeDetector(scores, maps), test)  # type: ignore[arg-type]
    assert result.image_scores == pytest.approx(scores.tolist())
    assert result.training["best_step"] == 2 and result.train_images == 0
    low, high = result.intervals["image_auroc"]
    assert low <= result.metrics["image_auroc"] <= high


def test_markdown_shows_the_intervals():
    metrics = {"image_auroc": 0.98765, "pixel_auroc": 0.9, "aupro_0.3": 0.8, "pixel_ap": 0.5, "image_f1_max": 0.9}
    result = Result("patchcore", metrics, 1.0, 1.0, 10.0, 5, 0, {},
                    {"image_auroc": [0.9621, 1.0], "pixel_auroc": [0.85, 0.95]}, [0.1], None)
    row = markdown_table([result]).splitlines()[2]
    assert row.startswith("| patchcore | 0.9877 [0.962, 1.000] | 0.9000 [0.850, 0.950] | 0.8000 |")
