"""Cross-fitted anomaly maps: every training image scored by a detector fitted without it (and without its source).

A memory-bank detector scores its own training images about 0 (each of their patches is in the
bank). A detector that learns to correct such maps (PatchCore-refine) must train on maps that look
like those of unseen images: the normal images are split into two halves (folds), one detector is
fitted per half, and every normal image and every synthetic anomaly (through the normal image it was
made from) is scored by the detector of the other half. The maps are then put on a common scale by
statistics of the normal maps only (``MapScale``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from detectors.base import Detector
from detectors.data.training import TrainingSet
from synth.errors import SynthError

FOLDS = 2
MAP_CLIP = 4.0  # normalised maps are clipped above at this (1: a high normal image maximum)
HIGH_QUANTILE = 0.99  # of the normal images' map maxima: the normalised value 1


@dataclass
class CrossFit:
    """Which fold each normal image fell in, and the maps of the normal images and anomalies from the other fold."""

    folds: np.ndarray  # (N,) int64 fold of each normal image
    normal: np.ndarray  # (N, H, W) float32
    anomalous: np.ndarray  # (A, H, W) float32


def split_folds(count: int, rng: np.random.Generator) -> np.ndarray:
    """A fold (0 or 1) for each of ``count`` normal images: a random split into halves."""
    if count < FOLDS:
        raise SynthError(f"cross-fitting needs at least {FOLDS} normal images, got {count}")
    assignment = np.empty(count, np.int64)
    assignment[rng.permutation(count)] = np.arange(count) % FOLDS
    return assignment


def cross_fitted_maps(data: TrainingSet, sources: np.ndarray, folds: np.ndarray,
                      make_detector: Callable[[], Detector]) -> CrossFit:
    """Maps of every normal image and anomaly of ``data`` by a fresh detector fitted on the normal images of
    the other fold; ``sources[j]`` is the normal image anomaly ``j`` was made from (its fold decides)."""
    normal = np.empty((len(data.normal), *data.size.shape), np.float32)
    anomalous = np.empty((len(data.anomalous), *data.size.shape), np.float32)
    anomaly_folds = folds[np.asarray(sources, np.int64)]
    for fold in range(FOLDS):
        detector = make_detector()
        detector.fit(TrainingSet([data.normal[i] for i in np.flatnonzero(folds == fold)]))
        normal_rows, anomaly_rows = np.flatnonzero(folds != fold), np.flatnonzero(anomaly_folds != fold)
        normal[normal_rows] = detector.score(data.normal_images(normal_rows))[1]
        if len(anomaly_rows):
            anomalous[anomaly_rows] = detector.score(data.anomalous_images(anomaly_rows)[0])[1]
    return CrossFit(folds, normal, anomalous)


@dataclass(frozen=True)
class MapScale:
    """(map - low) / (high - low), clipped above at MAP_CLIP: low = the median normal pixel, high = the 0.99
    quantile of the normal images' map maxima, both from maps of normal images the detector did not see.

    Increasing, so it keeps the order of the pixels (and of the image maxima) except above MAP_CLIP; not
    clipped below (distances >= 0 bound it), so no ties are made among the low values."""

    low: float
    high: float

    @classmethod
    def of_normal(cls, maps: np.ndarray) -> "MapScale":
        low = float(np.median(maps))
        high = float(np.quantile(maps.reshape(len(maps), -1).max(axis=1), HIGH_QUANTILE))
        return cls(low, high if high > low else low + 1.0)

    def __call__(self, maps: np.ndarray) -> np.ndarray:
        return np.minimum((maps - self.low) / (self.high - self.low), MAP_CLIP).astype(np.float32)
