"""Two-level bootstrap verdicts on every headline metric: image AUROC, pixel AUROC and AUPRO.

``metrics.paired_difference_interval_over_seeds`` compares image AUROCs; this module does the same for
the pixel metrics, so "detector A beats B on pixel AUROC and AUPRO" can be stated with an interval that
holds both the spread over test images and that between training seeds. Every resample draws the test
images (normal and anomalous separately, the same draw for both sides) and, for each side on its own,
as many of its seeds with replacement; the difference of the seed-mean metrics over 1,000 resamples
gives the percentile interval.

The pixel metrics of a resample come from per-image histograms over score bins shared by all images of
one run (quantiles of its pixels, ``BINS`` of them), weighted by the images' draw counts:

* pixel AUROC is the trapezoid rule over the ROC points at the bin edges (``metrics._binned_auroc``);
* AUPRO (Bergmann et al., MVTec AD) is the PRO-vs-FPR curve at the bin edges, integrated with the
  trapezoid rule up to the FPR limit (linearly interpolated there) and divided by it. Each image
  carries its regions (8-connected components of its mask): per bin, the sum of 1 / region size over
  its anomalous pixels, and its number of regions, so a drawn image brings its regions along.

Within a bin, pixels count as tied; with 10,000 bins the full-set values differ from the exact
``metrics`` values by about 1e-4 (tests check both). The estimates reported are the exact ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from scipy import ndimage

from detectors.base import load_detector
from detectors.evaluation.bench import TestSet
from detectors.evaluation.metrics import (EIGHT_CONNECTED, Difference, _binned_auroc, _checked_bootstrap,
                                          _float_maps, _percentile_interval, _resampled_image_auroc, evaluate,
                                          resample_counts)
from synth.data import ImageSize, load_category
from synth.errors import SynthError

BINS = 10_000  # score bins per run
METRICS = ("image_auroc", "pixel_auroc", "aupro_0.3")
MAX_FPR = 0.3


@dataclass(frozen=True)
class Run:
    """One fitted detector's output on a test set: image scores (N,) and anomaly maps (N, H, W)."""

    scores: np.ndarray
    maps: np.ndarray


@dataclass(frozen=True)
class PixelHistograms:
    """Per test image (rows) and score bin (ascending): anomalous and normal pixel counts, the summed
    1 / region size of its anomalous pixels; and each image's number of regions."""

    anomalous: np.ndarray
    normal: np.ndarray
    region_weight: np.ndarray
    regions: np.ndarray

    @classmethod
    def of(cls, masks: np.ndarray, maps: np.ndarray, bins: int = BINS) -> "PixelHistograms":
        masks, maps = np.asarray(masks) > 0, _float_maps(maps)
        if masks.shape != maps.shape or masks.ndim != 3:
            raise SynthError(f"masks {masks.shape} and maps {maps.shape} must both be (N, H, W)")
        images = len(maps)
        flat = maps.reshape(images, -1)
        ascending = np.sort(flat, axis=None)
        edges = np.unique(ascending[np.arange(1, bins) * len(ascending) // bins])
        width = len(edges) + 1
        index = np.searchsorted(edges, flat, "right") + width * np.arange(images)[:, None]
        within_each_image = np.zeros((3, 3, 3), dtype=int)
        within_each_image[1] = EIGHT_CONNECTED
        components, total = ndimage.label(masks, structure=within_each_image)
        sizes = np.bincount(components.ravel(), minlength=total + 1).astype(float)
        inverse_size = np.divide(1.0, sizes, out=np.zeros_like(sizes), where=sizes > 0)
        inverse_size[0] = 0.0
        anomalous = masks.reshape(images, -1)

        def per_bin(selected: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
            return np.bincount(index[selected], weights, minlength=images * width).reshape(images, width)

        image_of_region = [found[0].start for found in ndimage.find_objects(components)]
        regions = np.bincount(image_of_region, minlength=images).astype(float)
        return cls(per_bin(anomalous), per_bin(~anomalous),
                   per_bin(anomalous, inverse_size[components.reshape(images, -1)[anomalous]]), regions)

    def resampled(self, counts: np.ndarray, max_fpr: float = MAX_FPR) -> dict[str, np.ndarray]:
        """Pixel AUROC and AUPRO of every resample (rows of ``counts``: draw counts per image)."""
        normal = counts @ self.normal
        return {"pixel_auroc": _binned_auroc(counts @ self.anomalous, normal),
                "aupro_0.3": binned_aupro(normal, counts @ self.region_weight, counts @ self.regions, max_fpr)}


def binned_aupro(normal: np.ndarray, region_weight: np.ndarray, regions: np.ndarray,
                 max_fpr: float = MAX_FPR) -> np.ndarray:
    """AUPRO from per-bin counts (last axis ascending): normal pixels, summed 1 / region size, and the
    number of regions (one per row). The curve's points are the bin edges, from the highest down."""
    if not 0 < max_fpr <= 1:
        raise SynthError(f"the FPR limit must be in (0, 1], got {max_fpr}")
    normal, region_weight = np.atleast_2d(normal)[:, ::-1], np.atleast_2d(region_weight)[:, ::-1]
    regions = np.atleast_1d(regions).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        fpr = np.cumsum(normal, axis=1) / normal.sum(axis=1, keepdims=True)
        pro = np.cumsum(region_weight, axis=1) / regions[:, None]
    zeros = np.zeros((len(fpr), 1))
    fpr, pro = np.hstack([zeros, fpr]), np.hstack([zeros, pro])
    inside = fpr <= max_fpr
    last = inside.sum(axis=1) - 1  # the last point inside the limit
    rows = np.arange(len(fpr))
    widths = np.diff(fpr, axis=1)
    heights = 0.5 * (pro[:, 1:] + pro[:, :-1])
    area = np.where(inside[:, 1:], widths * heights, 0.0).sum(axis=1)
    following = np.minimum(last + 1, fpr.shape[1] - 1)
    x0, x1, y0, y1 = fpr[rows, last], fpr[rows, following], pro[rows, last], pro[rows, following]
    with np.errstate(invalid="ignore", divide="ignore"):
        at_limit = np.where(x1 > x0, y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0), y0)
    area += (max_fpr - x0) * 0.5 * (y0 + at_limit)
    return area / max_fpr


def _side(labels: np.ndarray, masks: np.ndarray, runs: Iterable[Run], counts: np.ndarray
          ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Exact metrics per seed (averaged) and the resampled ones per seed: {metric: (seeds, resamples)}."""
    exact: dict[str, list[float]] = {metric: [] for metric in METRICS}
    resampled: dict[str, list[np.ndarray]] = {metric: [] for metric in METRICS}
    for run in runs:  # one run's maps in memory at a time
        values = evaluate(labels, run.scores, masks, run.maps)
        pixels = PixelHistograms.of(masks, run.maps).resampled(counts)
        pixels["image_auroc"] = _resampled_image_auroc(labels, run.scores, counts)
        for metric in METRICS:
            exact[metric].append(values[metric])
            resampled[metric].append(pixels[metric])
    if not exact["image_auroc"]:
        raise SynthError("each side needs at least one run")
    return ({metric: float(np.mean(v)) for metric, v in exact.items()},
            {metric: np.stack(v) for metric, v in resampled.items()})


def paired_differences_over_seeds(labels: np.ndarray, masks: np.ndarray, runs_a: Iterable[Run],
                                  runs_b: Iterable[Run], resamples: int = 1000, confidence: float = 0.95,
                                  seed: int = 0) -> dict[str, Difference]:
    """Image AUROC, pixel AUROC and AUPRO@0.3 of a's seeds minus b's, each with its two-level interval.

    Runs may be lazy iterables (one run's maps in memory at a time). The estimates are exact (mean over
    seeds of ``metrics.evaluate``); the intervals come from the binned resamples.
    """
    _checked_bootstrap(resamples, confidence)
    counts = resample_counts(labels, resamples, seed)
    exact_a, per_seed_a = _side(labels, masks, runs_a, counts)
    exact_b, per_seed_b = _side(labels, masks, runs_b, counts)
    seed_draws = np.random.default_rng((seed, 1))
    draws_a = seed_draws.integers(len(per_seed_a["image_auroc"]), size=(resamples, len(per_seed_a["image_auroc"])))
    draws_b = seed_draws.integers(len(per_seed_b["image_auroc"]), size=(resamples, len(per_seed_b["image_auroc"])))
    columns = np.arange(resamples)[:, None]
    found = {}
    for metric in METRICS:
        mean_a = per_seed_a[metric][draws_a, columns].mean(axis=1)
        mean_b = per_seed_b[metric][draws_b, columns].mean(axis=1)
        found[metric] = Difference(exact_a[metric] - exact_b[metric],
                                   *_percentile_interval(mean_a - mean_b, confidence))
    return found


def describe(name_a: str, name_b: str, differences: dict[str, Difference],
             names: Sequence[tuple[str, str]] = (("image_auroc", "image AUROC"), ("pixel_auroc", "pixel AUROC"),
                                                  ("aupro_0.3", "AUPRO@0.3"))) -> list[str]:
    """One line per metric: who beats whom, the difference and its interval."""
    lines = []
    for key, label in names:
        found = differences[key]
        verdict = (f"{name_a} beats {name_b}" if found.sign > 0 else f"{name_b} beats {name_a}" if found.sign < 0
                   else "no difference shown")
        lines.append(f"{label}: {verdict} ({found.estimate:+.4f}, 95 % interval [{found.low:+.4f}, {found.high:+.4f}])")
    return lines



def compare_models(root: Path | None, category: str, models_a: Sequence[Path], models_b: Sequence[Path],
                   default_size: ImageSize, resamples: int = 1000, seed: int = 0) -> dict[str, Difference]:
    """``paired_differences_over_seeds`` of saved models (one per training seed and side) on ``category``'s
    test set, loaded at the size the models were fitted at (all must share it)."""
    first = load_detector(models_a[0])
    size = first.config.image_size() or default_size
    test = TestSet.from_category(load_category(root, category, size=size), size)

    def runs(models: Sequence[Path]) -> Iterator[Run]:
        for model in models:
            detector = first if model == models_a[0] else load_detector(model)
            found = detector.config.image_size() or default_size
            if found != size:
                raise SynthError(f"{model.name} was fitted at {found}, {models_a[0].name} at {size}; "
                                 "compare models of one size")
            scores, maps = detector.score(test.images)
            yield Run(np.asarray(scores), np.asarray(maps))

    return paired_differences_over_seeds(test.labels, test.masks, runs(models_a), runs(models_b), resamples,
                                         seed=seed)
