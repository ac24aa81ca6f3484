"""Anomaly detection metrics: image AUROC and F1-max, pixel AUROC and AP, AUPRO up to FPR 0.3.

AUPRO follows the MVTec AD definition (Bergmann et al.): the ground-truth regions are the
8-connected components of every test mask; at each threshold the per-region overlap (share of the
region's pixels above the threshold) is averaged over all regions of the test set and the FPR is
taken over all normal pixels; the PRO-vs-FPR curve is integrated up to FPR 0.3 (the curve is
interpolated linearly at 0.3) and divided by 0.3.

The pixel metrics never sort all pixels together. Every one of them is a sum over (anomalous,
normal) pixel pairs ordered by score, so it is computed from the sorted normal scores and a binary
search per anomalous pixel, with ties counted half as the threshold curves count them:

* pixel AUROC = mean over pairs of [a > n] + 0.5 [a = n] (integer counts, one division);
* AUPRO: each normal pixel above the FPR limit moves the curve right by 1 / (normal pixels), at the
  height of the PRO just above its score plus half the PRO of anomalous pixels tied with it (the
  trapezoid over a threshold shared by both); only the normal pixels above the limit are sorted,
  and the group straddling the limit gives the interpolated end piece;
* pixel AP = mean over anomalous pixels of the precision at their score.

The values equal scikit-learn's and the official MVTec AD evaluation code's (a reference
re-implementation is in benchmarks/metrics.py and tests/test_detectors_metrics.py) up to rounding,
far below 1e-8.

Uncertainty: ``bootstrap_intervals`` gives percentile bootstrap intervals of image and pixel AUROC
over test images, and ``paired_difference_interval`` (``paired_difference_interval_over_seeds``
for several training seeds) the interval of an image AUROC difference under paired resamples.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np
from scipy import ndimage
from sklearn.metrics import precision_recall_curve, roc_auc_score

from synth.errors import SynthError

EIGHT_CONNECTED = np.ones((3, 3), dtype=int)


def _binary_labels(labels: np.ndarray, what: str) -> np.ndarray:
    """Flat boolean labels (nonzero = anomalous); both classes must occur."""
    labels = (np.asarray(labels) > 0).ravel()
    if labels.all() or not labels.any():
        raise SynthError(f"{what} needs both normal and anomalous samples")
    return labels


def _prepared(labels: np.ndarray, scores: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Flat boolean labels (nonzero = anomalous) and float scores; both classes must occur."""
    return _binary_labels(labels, what), np.asarray(scores, np.float64).ravel()


def image_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of image scores (labels 0 normal, 1 anomalous)."""
    return float(roc_auc_score(*_prepared(labels, scores, "image AUROC")))


def image_f1_max(labels: np.ndarray, scores: np.ndarray) -> float:
    """Best F1 over all thresholds on the image scores."""
    precision, recall, _ = precision_recall_curve(*_prepared(labels, scores, "image F1-max"))
    f1 = 2 * precision * recall / np.maximum(precision + recall, np.finfo(float).tiny)
    return float(f1.max())


def _float_maps(maps: np.ndarray) -> np.ndarray:
    """Scores as float32 or float64 (kept as given: converting would not change any order or tie)."""
    maps = np.asarray(maps)
    if maps.dtype not in (np.float32, np.float64):
        maps = maps.astype(np.float64)
    if np.isnan(maps).any():
        raise SynthError("anomaly maps contain NaN")
    return maps


class PixelScores:
    """The pixels of a test set split by ground truth, with the sorted scores the pixel metrics share.

    ``valid`` (same shape, optional) marks the pixels that belong to an image: images of different sizes
    padded to one array are scored on their own pixels only (the padding is neither normal nor anomalous).
    """

    def __init__(self, masks: np.ndarray, maps: np.ndarray, what: str = "pixel metrics",
                 valid: np.ndarray | None = None) -> None:
        self.maps = _float_maps(maps)
        masks = np.asarray(masks) > 0
        inside = np.ones(self.maps.shape, bool) if valid is None else np.asarray(valid, bool)
        if masks.shape != self.maps.shape or inside.shape != self.maps.shape:
            raise SynthError(f"masks {masks.shape}, maps {self.maps.shape} and valid {inside.shape} differ in shape")
        self.masks = masks & inside
        self.anomalous = self.maps[self.masks]
        self.normal = self.maps[inside & ~self.masks]
        if not len(self.anomalous) or not len(self.normal):
            raise SynthError(f"{what} needs both normal and anomalous pixels")

    @cached_property
    def normal_sorted(self) -> np.ndarray:
        return np.sort(self.normal)

    @cached_property
    def anomalous_sorted(self) -> np.ndarray:
        return np.sort(self.anomalous)

    def normal_below(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Numbers of normal pixels scored below each value, and at most each value."""
        return (np.searchsorted(self.normal_sorted, values, "left"),
                np.searchsorted(self.normal_sorted, values, "right"))

    def auroc(self) -> float:
        below, at_most = self.normal_below(self.anomalous_sorted)
        pairs = 2 * len(self.anomalous) * len(self.normal)
        return float((int(below.sum(dtype=np.int64)) + int(at_most.sum(dtype=np.int64))) / pairs)

    def average_precision(self) -> float:
        values = self.anomalous_sorted
        anomalous_above = len(values) - np.searchsorted(values, values, "left")  # at or above each value
        normal_above = len(self.normal) - np.searchsorted(self.normal_sorted, values, "left")
        return float(np.mean(anomalous_above / (anomalous_above + normal_above)))

    @cached_property
    def region_weights(self) -> tuple[np.ndarray, np.ndarray, int]:
        """Per anomalous pixel (in ``anomalous`` order) its region's index; 1 / size of each region; the region count."""
        within_each_image = np.zeros((3, 3, 3), dtype=int)
        within_each_image[1] = EIGHT_CONNECTED  # 8-connected in every mask, never across masks
        components, regions = ndimage.label(self.masks, structure=within_each_image)
        region = components[self.masks] - 1
        return region, 1.0 / np.bincount(region, minlength=regions), regions

    def aupro(self, max_fpr: float = 0.3) -> float:
        """MVTec AD's AUPRO: area under PRO(FPR) for FPR in [0, max_fpr], divided by max_fpr."""
        if not 0 < max_fpr <= 1:
            raise SynthError(f"the FPR limit must be in (0, 1], got {max_fpr}")
        region, inverse_size, regions = self.region_weights
        normal = len(self.normal)
        # The first count of normal pixels above a threshold whose FPR passes the limit, as the curve's x.
        crossing = min(max(int(np.floor(max_fpr * normal)), 1), normal)
        while crossing > 1 and (crossing - 1) / normal > max_fpr:
            crossing -= 1
        while crossing / normal <= max_fpr and crossing < normal:
            crossing += 1
        if "normal_sorted" in self.__dict__:  # sorted already (evaluate): take the top
            threshold = self.normal_sorted[normal - crossing]
            start = np.searchsorted(self.normal_sorted, threshold, "right")
            top = self.normal_sorted[start:]
        else:
            threshold = np.partition(self.normal, normal - crossing)[normal - crossing]
            top = np.sort(self.normal[self.normal > threshold])
        # Full steps: for each anomalous pixel, the normal pixels above the threshold scored below it
        # (counted once) and tied with it (counted half), summed per region as exact integers.
        left, right = np.searchsorted(top, self.anomalous, "left"), np.searchsorted(top, self.anomalous, "right")
        per_region = np.bincount(region, weights=left + right, minlength=regions)
        area = float(per_region @ inverse_size) / (2 * regions * normal)
        # End piece: the normal pixels tied at the threshold straddle the limit; interpolate linearly.
        above = len(top)
        tied = int(np.count_nonzero(self.normal == threshold))
        weights = inverse_size[region]
        pro_above = float(weights[self.anomalous > threshold].sum()) / regions
        pro_tied = float(weights[self.anomalous == threshold].sum()) / regions
        width = max_fpr - above / normal
        area += width * (pro_above + 0.5 * pro_tied * width / (tied / normal))
        return area / max_fpr

    def pro_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """FPR and mean per-region overlap at every distinct threshold (descending), both starting at 0."""
        region, inverse_size, regions = self.region_weights
        scores = np.concatenate([self.anomalous, self.normal])
        order = np.argsort(scores)[::-1]  # ties are merged below, so the sort need not be stable
        weights = np.concatenate([inverse_size[region], np.zeros(len(self.normal))])[order]
        scores = scores[order]
        fpr = np.cumsum(order >= len(self.anomalous)) / len(self.normal)
        pro = np.cumsum(weights) / regions
        last_of_each_score = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
        return np.r_[0.0, fpr[last_of_each_score]], np.r_[0.0, pro[last_of_each_score]]


def pixel_auroc(masks: np.ndarray, maps: np.ndarray) -> float:
    """ROC AUC over all pixels of all test images (masks: nonzero = anomalous)."""
    return PixelScores(masks, maps, "pixel AUROC").auroc()


def pixel_ap(masks: np.ndarray, maps: np.ndarray) -> float:
    """Average precision over all pixels of all test images."""
    return PixelScores(masks, maps, "pixel AP").average_precision()


def pro_curve(masks: np.ndarray, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FPR and mean per-region overlap at every distinct threshold (descending), both starting at 0."""
    return _aupro_pixels(masks, maps).pro_curve()


def aupro(masks: np.ndarray, maps: np.ndarray, max_fpr: float = 0.3) -> float:
    """Area under the PRO curve for FPR in [0, max_fpr], divided by max_fpr."""
    return _aupro_pixels(masks, maps).aupro(max_fpr)


def _aupro_pixels(masks: np.ndarray, maps: np.ndarray) -> PixelScores:
    masks, maps = np.asarray(masks), np.asarray(maps)
    if masks.shape != maps.shape or masks.ndim != 3:
        raise SynthError(f"masks {masks.shape} and maps {maps.shape} must both be (N, H, W)")
    if not (masks > 0).any() or (masks > 0).all():
        raise SynthError("AUPRO needs anomalous regions and normal pixels in the ground truth")
    return PixelScores(masks, maps, "AUPRO")


def evaluate(labels: np.ndarray, scores: np.ndarray, masks: np.ndarray, maps: np.ndarray) -> dict[str, float]:
    """All metrics for a test set: image labels/scores and pixel masks/maps (N, H, W); one sort serves all pixel metrics."""
    pixels = _aupro_pixels(masks, maps)
    return {
        "image_auroc": image_auroc(labels, scores),
        "image_f1_max": image_f1_max(labels, scores),
        "pixel_auroc": pixels.auroc(),
        "pixel_ap": pixels.average_precision(),
        "aupro_0.3": pixels.aupro(),
    }


PIXEL_BINS = 2000  # score bins of the bootstrapped pixel AUROC


def _checked_bootstrap(resamples: int, confidence: float) -> None:
    if resamples < 1:
        raise SynthError(f"the bootstrap needs at least one resample, got {resamples}")
    if not 0 < confidence < 1:
        raise SynthError(f"the confidence must be in (0, 1), got {confidence}")


def resample_counts(labels: np.ndarray, resamples: int, seed: int = 0) -> np.ndarray:
    """(resamples, N): how often each image is drawn when normal and anomalous images are resampled
    separately with replacement, each class keeping its size (so every resample holds both classes)."""
    labels = _binary_labels(labels, "the bootstrap")
    rng = np.random.default_rng(seed)
    counts = np.zeros((resamples, len(labels)))
    for members in (np.flatnonzero(~labels), np.flatnonzero(labels)):
        counts[:, members] = rng.multinomial(len(members), np.full(len(members), 1 / len(members)), resamples)
    return counts


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` share of the resampled values (resamples where a metric is undefined are left out)."""
    low, high = np.nanquantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def _resampled_image_auroc(labels: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Exact image AUROC of every resample (rows of ``counts``, image draw counts), from the pairwise win matrix."""
    labels, scores = _prepared(labels, scores, "image AUROC")
    anomalous, normal = scores[labels][:, None], scores[~labels][None, :]
    wins = (anomalous > normal) + 0.5 * (anomalous == normal)
    pairs = counts[:, labels].sum(axis=1) * counts[:, ~labels].sum(axis=1)
    return ((counts[:, labels] @ wins) * counts[:, ~labels]).sum(axis=1) / pairs


def _pixel_histograms(masks: np.ndarray, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image (rows), its anomalous and its normal pixel counts in score bins shared by all images.

    The bin edges are quantiles of all pixels, so each bin holds about 1 / ``PIXEL_BINS`` of them;
    pixels with equal scores always share a bin.
    """
    masks, maps = np.asarray(masks) > 0, _float_maps(maps)
    if masks.shape != maps.shape or masks.ndim != 3:
        raise SynthError(f"masks {masks.shape} and maps {maps.shape} must both be (N, H, W)")
    flat = maps.reshape(len(maps), -1)
    ascending = np.sort(flat, axis=None)
    edges = np.unique(ascending[np.arange(1, PIXEL_BINS) * len(ascending) // PIXEL_BINS])
    images, bin_count = len(flat), len(edges) + 1
    index = np.searchsorted(edges, flat, "right") + bin_count * np.arange(images)[:, None]  # (image, bin) -> one index
    anomalous = masks.reshape(images, -1)
    return (np.bincount(index[anomalous], minlength=images * bin_count).reshape(images, bin_count),
            np.bincount(index[~anomalous], minlength=images * bin_count).reshape(images, bin_count))


def _binned_auroc(anomalous: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """AUROC from anomalous and normal counts per score bin (last axis, ascending): the trapezoid rule
    over the ROC points at the bin edges, i.e. pixel pairs in one bin count half; NaN without both classes."""
    normal_below = np.cumsum(normal, axis=-1) - normal
    pairs = anomalous.sum(axis=-1) * normal.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (anomalous * (normal_below + 0.5 * normal)).sum(axis=-1) / pairs


def bootstrap_intervals(labels: np.ndarray, scores: np.ndarray, masks: np.ndarray, maps: np.ndarray,
                        resamples: int = 1000, confidence: float = 0.95, seed: int = 0
                        ) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of image and pixel AUROC over test images.

    Each resample draws the normal and the anomalous images separately with replacement (both
    classes keep their counts); image AUROC is exact in every resample. Pixel AUROC is binned: each
    image's pixels are counted in ``PIXEL_BINS`` score bins shared by all images (quantiles of all
    pixels), a resample's histograms are its images' histograms weighted by their draw counts (one
    matrix product for all resamples), and AUROC is the trapezoid rule over the ROC points at the
    bin edges, so (anomalous, normal) pixel pairs within one bin count half. It differs from the
    exact value by at most half the share of pairs within a bin: about 1 / (2 PIXEL_BINS) = 2.5e-4
    when normal pixels dominate and few scores tie; tests check it against ``pixel_auroc``.
    """
    _checked_bootstrap(resamples, confidence)
    counts = resample_counts(labels, resamples, seed)
    anomalous, normal = _pixel_histograms(masks, maps)
    pixel = _binned_auroc(counts @ anomalous, counts @ normal)
    return {"image_auroc": _percentile_interval(_resampled_image_auroc(labels, scores, counts), confidence),
            "pixel_auroc": _percentile_interval(pixel, confidence)}


def paired_difference_interval(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray,
                               resamples: int = 1000, confidence: float = 0.95, seed: int = 0
                               ) -> tuple[float, float, float]:
    """Image AUROC of a minus that of b: (estimate, low, high), both scored on the same stratified resamples."""
    return paired_difference_interval_over_seeds(labels, [scores_a], [scores_b], resamples, confidence, seed)


@dataclass(frozen=True)
class Difference:
    """A metric's seed-mean of side a minus that of side b, and its 95 % two-level bootstrap interval."""

    estimate: float
    low: float
    high: float

    @property
    def sign(self) -> int:
        """1 when a is shown better, -1 when b is, 0 when the interval holds 0."""
        return 1 if self.low > 0 else -1 if self.high < 0 else 0


def paired_difference_interval_over_seeds(labels: np.ndarray, seeds_a: Sequence[np.ndarray],
                                          seeds_b: Sequence[np.ndarray], resamples: int = 1000,
                                          confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean image AUROC over a's seeds minus that over b's: (estimate, low, high).

    A two-level bootstrap: every resample draws the test images (stratified, the same draw for both
    sides) and, for each side on its own, as many of its training seeds with replacement, and compares
    the mean AUROCs of the drawn seeds. The interval thus holds the spread between training seeds as
    well as that over test images; with one seed per side it is the paired test-image bootstrap.
    """
    _checked_bootstrap(resamples, confidence)
    if not len(seeds_a) or not len(seeds_b):
        raise SynthError("each side needs at least one score vector")
    counts = resample_counts(labels, resamples, seed)
    seed_draws = np.random.default_rng((seed, 1))
    (estimate_a, resampled_a), (estimate_b, resampled_b) = (_mean_auroc(labels, seeds, counts, seed_draws)
                                                            for seeds in (seeds_a, seeds_b))
    return (estimate_a - estimate_b, *_percentile_interval(resampled_a - resampled_b, confidence))


def _mean_auroc(labels: np.ndarray, seeds: Sequence[np.ndarray], counts: np.ndarray,
                rng: np.random.Generator) -> tuple[float, np.ndarray]:
    """Image AUROC averaged over score vectors: on the full test set, and in every resample over the
    image draws of ``counts`` and a draw of the seeds with replacement."""
    per_seed = np.stack([_resampled_image_auroc(labels, scores, counts) for scores in seeds])  # (seeds, resamples)
    drawn = rng.integers(len(seeds), size=(len(counts), len(seeds)))
    return (float(np.mean([image_auroc(labels, scores) for scores in seeds])),
            per_seed[drawn, np.arange(len(counts))[:, None]].mean(axis=1))
