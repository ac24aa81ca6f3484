"""Two-level bootstrap verdicts on image AUROC, pixel AUROC and AUPRO."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.evaluation.metrics import aupro, pixel_auroc
from detectors.evaluation.verdicts import (PixelHistograms, Run, binned_aupro, describe,
                                           paired_differences_over_seeds)
from synth.errors import SynthError
from tests.test_bootstrap import synthetic_test_set


def lifted(masks: np.ndarray, lift: float, seed: int) -> np.ndarray:
    """Noise maps raised by ``lift`` inside the masks."""
    return np.random.default_rng(seed).normal(size=masks.shape) + lift * (masks > 0)


def test_binned_metrics_on_the_full_set_match_the_exact_ones():
    _, _, masks, maps = synthetic_test_set(80, side=24)
    histograms = PixelHistograms.of(masks, maps)
    full = histograms.resampled(np.ones((1, len(masks))))
    assert full["pixel_auroc"][0] == pytest.approx(pixel_auroc(masks, maps), abs=1e-3)
    assert full["aupro_0.3"][0] == pytest.approx(aupro(masks, maps), abs=2e-3)
    for limit in (0.05, 1.0):
        assert binned_aupro(histograms.normal.sum(0), histograms.region_weight.sum(0), histograms.regions.sum(),
                            limit)[0] == pytest.approx(aupro(masks, maps, limit), abs=5e-3)


def test_each_image_counts_its_own_regions():
    masks = np.zeros((3, 12, 12), np.uint8)
    masks[0, 1:3, 1:3] = masks[0, 8:10, 8:10] = 1  # two regions
    masks[2, 4:9, 4:6] = 1  # one region
    histograms = PixelHistograms.of(masks, lifted(masks, 2.0, 0))
    assert histograms.regions.tolist() == [2.0, 0.0, 1.0]
    assert histograms.region_weight.sum(axis=1) == pytest.approx([2.0, 0.0, 1.0])  # 1 / size over each region's pixels
    assert histograms.anomalous.sum() == 18 and histograms.normal.sum() == 3 * 144 - 18


def test_a_run_against_itself_differs_by_exactly_zero():
    labels, scores, masks, maps = synthetic_test_set(40)
    found = paired_differences_over_seeds(labels, masks, [Run(scores, maps)], [Run(scores, maps)], resamples=200)
    for difference in found.values():
        assert (difference.estimate, difference.low, difference.high) == (0.0, 0.0, 0.0)
        assert difference.sign == 0


def test_sharper_maps_win_on_the_pixel_metrics_across_seeds():
    labels, scores, masks, _ = synthetic_test_set(60)
    sharp = [Run(scores, lifted(masks, 2.5, seed)) for seed in range(3)]
    blunt = [Run(scores, lifted(masks, 1.0, seed + 10)) for seed in range(3)]
    found = paired_differences_over_seeds(labels, masks, iter(sharp), iter(blunt), resamples=300)
    for metric in ("pixel_auroc", "aupro_0.3"):
        assert found[metric].sign == 1 and found[metric].low < found[metric].estimate < found[metric].high
    assert found["pixel_auroc"].estimate == pytest.approx(
        np.mean([pixel_auroc(masks, r.maps) for r in sharp]) - np.mean([pixel_auroc(masks, r.maps) for r in blunt]))
    assert found["image_auroc"].estimate == 0.0  # same image scores on both sides
    lines = describe("sharp", "blunt", found)
    assert lines[1].startswith("pixel AUROC: sharp beats blunt (+") and len(lines) == 3


def test_same_seed_same_verdict_and_bad_input():
    labels, scores, masks, maps = synthetic_test_set(30)
    a, b = [Run(scores, maps)], [Run(-scores, lifted(masks, 0.5, 1))]
    assert paired_differences_over_seeds(labels, masks, a, b, seed=4) == paired_differences_over_seeds(
        labels, masks, a, b, seed=4)
    with pytest.raises(SynthError, match="at least one run"):
        paired_differences_over_seeds(labels, masks, [], b)
    with pytest.raises(SynthError, match="must both be"):
        PixelHistograms.of(masks[:, :8], maps)
    with pytest.raises(SynthError, match="FPR limit"):
        binned_aupro(np.ones(4), np.ones(4), 1.0, 0.0)
