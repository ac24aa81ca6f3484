"""Pixel metrics: the former synth code, the current one and reference implementations, side by side.

    python benchmarks/metrics.py [--maps 100] [--size 256] [--repeats 3] [--seed 0] [--levels 256]

Times (CPU seconds, best of ``--repeats``) and values of AUPRO@0.3, pixel AUROC and pixel AP on
random-ish anomaly maps with ties (smooth noise plus bumps on the defects, rounded to multiples of
1/``--levels``, about half the images defect-free):

* ``former``: detectors/metrics.py before issue 14 (a stable float64 argsort of all pixels, then
  cumulative sums; scikit-learn for pixel AUROC and AP), copied below;
* ``current``: detectors.evaluation.metrics as it is now (the per-metric functions, and ``evaluate``, which
  shares one sort between the three);
* ``reference``: AUPRO as the official MVTec AD evaluation code computes it (``REFERENCE_*`` below:
  a re-implementation from its published description, not a copy), pixel AUROC and AP as
  scikit-learn's ``roc_auc_score`` and ``average_precision_score`` (which the official PatchCore
  evaluation and anomalib use; the MVTec AD code has no pixel AUROC).

Prints a Markdown table and the largest difference of each implementation from the reference.
Never asserts.
"""

from __future__ import annotations

import argparse
import sys
import time
from bisect import bisect_right
from pathlib import Path

import numpy as np
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score

if __name__ == "__main__":  # benchmarks/detectors.py would shadow the package: the repository root comes first
    sys.path[0] = str(Path(__file__).resolve().parents[1])


# --- reference: the official MVTec AD AUPRO algorithm (Bergmann et al., IJCV 2021; its evaluation code) ---

def reference_pro_curve(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The official PRO curve: per-pixel FPR and PRO increments, one descending sort of all pixels,
    cumulative sums, one point per distinct score (the last pixel of each run of equal scores),
    (0, 0) prepended, both clipped to [0, 1]."""
    maps = np.array(maps)  # a copy: the official code sorts its input in place
    masks = np.asarray(masks) > 0
    fp_changes = np.zeros(maps.shape, np.uint32)
    pro_changes = np.zeros(maps.shape, np.float64)
    normal_pixels = regions = 0
    for index, mask in enumerate(masks):
        components, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=int))
        regions += count
        normal = components == 0
        normal_pixels += int(normal.sum())
        fp_changes[index, normal] = 1
        for label in range(1, count + 1):
            region = components == label
            pro_changes[index, region] = 1.0 / region.sum()
    scores = maps.ravel()
    order = np.argsort(scores).astype(np.uint32)[::-1]  # numpy's default (unstable) sort, then descending
    scores = scores[order]
    fpr = np.cumsum(fp_changes.ravel()[order]).astype(np.float64) / normal_pixels
    pro = np.cumsum(pro_changes.ravel()[order]) / regions
    keep = np.append(np.diff(scores) != 0, True)
    fpr, pro = np.clip(fpr[keep], 0, 1), np.clip(pro[keep], 0, 1)
    return np.concatenate([[0.0], fpr]), np.concatenate([[0.0], pro])


def reference_trapezoid(x: np.ndarray, y: np.ndarray, x_max: float | None = None) -> float:
    """The official integration: non-finite points dropped; up to ``x_max``, the curve is cut there and
    the last piece is the trapezoid up to the linearly interpolated point (unless a point lies at x_max)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    correction = 0.0
    if x_max is not None:
        if x_max not in x:
            ins = bisect_right(x, x_max)
            assert 0 < ins < len(x)
            y_interp = y[ins - 1] + (y[ins] - y[ins - 1]) * (x_max - x[ins - 1]) / (x[ins] - x[ins - 1])
            correction = 0.5 * (y_interp + y[ins - 1]) * (x_max - x[ins - 1])
        keep = x <= x_max
        x, y = x[keep], y[keep]
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction)


def reference_aupro(masks: np.ndarray, maps: np.ndarray, max_fpr: float = 0.3) -> float:
    fpr, pro = reference_pro_curve(maps, masks)
    return reference_trapezoid(fpr, pro, max_fpr) / max_fpr


def reference_pixel_auroc(masks: np.ndarray, maps: np.ndarray) -> float:
    return float(roc_auc_score((np.asarray(masks) > 0).ravel(), np.asarray(maps).ravel()))


def reference_pixel_ap(masks: np.ndarray, maps: np.ndarray) -> float:
    return float(average_precision_score((np.asarray(masks) > 0).ravel(), np.asarray(maps).ravel()))


# --- former: detectors/metrics.py at commit 1635dd5 (before issue 14) ---

def former_aupro(masks: np.ndarray, maps: np.ndarray, max_fpr: float = 0.3) -> float:
    masks, maps = np.asarray(masks) > 0, np.asarray(maps, np.float64)
    weights_pro = np.zeros(masks.shape, np.float64)
    regions = 0
    for index, mask in enumerate(masks):
        components, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=int))
        sizes = np.bincount(components.ravel())
        weights_pro[index] = np.where(components > 0, 1.0 / sizes[components], 0.0)
        regions += count
    normal = ~masks
    order = np.argsort(-maps.ravel(), kind="stable")
    scores = maps.ravel()[order]
    fpr = np.cumsum(normal.ravel()[order]) / normal.sum()
    pro = np.cumsum(weights_pro.ravel()[order]) / regions
    last_of_each_score = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    fpr, pro = np.r_[0.0, fpr[last_of_each_score]], np.r_[0.0, pro[last_of_each_score]]
    end = np.searchsorted(fpr, max_fpr, side="right")
    x, y = fpr[:end], pro[:end]
    if end < len(fpr) and x[-1] < max_fpr:
        y_end = np.interp(max_fpr, fpr[end - 1:end + 1], pro[end - 1:end + 1])
        x, y = np.r_[x, max_fpr], np.r_[y, y_end]
    return float(np.trapezoid(y, x) / max_fpr)


def former_pixel_auroc(masks: np.ndarray, maps: np.ndarray) -> float:
    return float(roc_auc_score((np.asarray(masks) > 0).ravel(), np.asarray(maps, np.float64).ravel()))


def former_pixel_ap(masks: np.ndarray, maps: np.ndarray) -> float:
    return float(average_precision_score((np.asarray(masks) > 0).ravel(), np.asarray(maps, np.float64).ravel()))


# --- test data ---

def random_maps(count: int, size: int, seed: int = 0, levels: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Masks {0, 255} uint8 and float32 maps (count, size, size): elliptic defects of 1-4 regions on about
    half the images; maps are smoothed noise plus a bump over each defect, rounded to multiples of 1/levels."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((count, size, size), np.uint8)
    rows, cols = np.mgrid[:size, :size]
    for index in np.flatnonzero(rng.random(count) < 0.5):
        mask = masks[index]
        for _ in range(rng.integers(1, 5)):
            cy, cx = rng.uniform(0, size, 2)
            ry, rx = rng.uniform(1, size / 6, 2)
            mask[((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1] = 255
    noise = ndimage.gaussian_filter(rng.normal(size=(count, size, size)), sigma=(0, 3, 3))
    bump = ndimage.gaussian_filter((masks > 0).astype(float), sigma=(0, 4, 4))
    maps = noise / noise.std() * 0.3 + bump * rng.uniform(0.5, 2.0, (count, 1, 1))
    return masks, (np.round(maps * levels) / levels).astype(np.float32)


def _best_time(function, repeats: int, *args) -> tuple[float, float]:
    best, value = float("inf"), float("nan")
    for _ in range(repeats):
        start = time.process_time()
        value = function(*args)
        best = min(best, time.process_time() - start)
    return value, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=100)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--levels", type=int, default=256, help="scores are multiples of 1/LEVELS (ties)")
    args = parser.parse_args()

    from detectors.evaluation.metrics import aupro, evaluate, pixel_ap, pixel_auroc

    masks, maps = random_maps(args.maps, args.size, args.seed, args.levels)
    labels = (masks > 0).any(axis=(1, 2)).astype(int)
    image_scores = maps.reshape(len(maps), -1).max(1)
    print(f"{args.maps} maps of {args.size}x{args.size}: {int((masks > 0).sum())} anomalous pixels in "
          f"{int(labels.sum())} images, {len(np.unique(maps))} distinct scores (float32), best of {args.repeats}\n")
    rows = {
        "AUPRO@0.3": {"former": former_aupro, "current": aupro, "reference": reference_aupro},
        "pixel AUROC": {"former": former_pixel_auroc, "current": pixel_auroc, "reference": reference_pixel_auroc},
        "pixel AP": {"former": former_pixel_ap, "current": pixel_ap, "reference": reference_pixel_ap},
    }
    print("| metric | former (s) | current (s) | reference (s) | reference value | former − reference | current − reference |")
    print("|---|---|---|---|---|---|---|")
    for metric, functions in rows.items():
        results = {name: _best_time(function, args.repeats, masks, maps) for name, function in functions.items()}
        reference = results["reference"][0]
        print(f"| {metric} | {results['former'][1]:.3f} | {results['current'][1]:.3f} | {results['reference'][1]:.3f} "
              f"| {reference:.12f} | {results['former'][0] - reference:.1e} | {results['current'][0] - reference:.1e} |")
    result, seconds = _best_time(evaluate, args.repeats, labels, image_scores, masks, maps)
    print(f"\ncurrent evaluate() (all five metrics, one sort of the normal pixels): {seconds:.3f} s; "
          + ", ".join(f"{key} {value:.6f}" for key, value in result.items()))


if __name__ == "__main__":
    main()
