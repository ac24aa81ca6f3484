"""Anomaly detection metrics: image AUROC and F1-max, pixel AUROC and AP, AUPRO up to FPR 0.3.

AUPRO follows the MVTec AD definition (Bergmann et al.): the ground-truth regions are the
8-connected components of every test mask; at each threshold the per-region overlap (share of the
region's pixels above the threshold) is averaged over all regions of the test set and the FPR is
taken over all normal pixels; the PRO-vs-FPR curve is integrated up to FPR 0.3 (the curve is
interpolated linearly at 0.3) and divided by 0.3.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from synth.errors import SynthError

EIGHT_CONNECTED = np.ones((3, 3), dtype=int)


def _prepared(labels: np.ndarray, scores: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Flat boolean labels (nonzero = anomalous) and float scores; both classes must occur."""
    labels = (np.asarray(labels) > 0).ravel()
    if labels.all() or not labels.any():
        raise SynthError(f"{what} needs both normal and anomalous samples")
    return labels, np.asarray(scores, np.float64).ravel()


def image_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of image scores (labels 0 normal, 1 anomalous)."""
    return float(roc_auc_score(*_prepared(labels, scores, "image AUROC")))


def image_f1_max(labels: np.ndarray, scores: np.ndarray) -> float:
    """Best F1 over all thresholds on the image scores."""
    precision, recall, _ = precision_recall_curve(*_prepared(labels, scores, "image F1-max"))
    f1 = 2 * precision * recall / np.maximum(precision + recall, np.finfo(float).tiny)
    return float(f1.max())


def pixel_auroc(masks: np.ndarray, maps: np.ndarray) -> float:
    """ROC AUC over all pixels of all test images (masks: nonzero = anomalous)."""
    return float(roc_auc_score(*_prepared(masks, maps, "pixel AUROC")))


def pixel_ap(masks: np.ndarray, maps: np.ndarray) -> float:
    """Average precision over all pixels of all test images."""
    return float(average_precision_score(*_prepared(masks, maps, "pixel AP")))


def pro_curve(masks: np.ndarray, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FPR and mean per-region overlap at every distinct threshold (descending), both starting at 0."""
    masks, maps = np.asarray(masks) > 0, np.asarray(maps, np.float64)
    if masks.shape != maps.shape or masks.ndim != 3:
        raise SynthError(f"masks {masks.shape} and maps {maps.shape} must both be (N, H, W)")
    # Each anomalous pixel adds 1 / (region size x number of regions) to the PRO when it passes the
    # threshold, each normal pixel adds 1 / (number of normal pixels) to the FPR.
    weights_pro = np.zeros(masks.shape, np.float64)
    regions = 0
    for index, mask in enumerate(masks):
        components, count = ndimage.label(mask, structure=EIGHT_CONNECTED)
        sizes = np.bincount(components.ravel())
        weights_pro[index] = np.where(components > 0, 1.0 / sizes[components], 0.0)
        regions += count
    normal = ~masks
    if regions == 0 or not normal.any():
        raise SynthError("AUPRO needs anomalous regions and normal pixels in the ground truth")
    order = np.argsort(-maps.ravel(), kind="stable")
    scores = maps.ravel()[order]
    fpr = np.cumsum(normal.ravel()[order]) / normal.sum()
    pro = np.cumsum(weights_pro.ravel()[order]) / regions
    last_of_each_score = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    return np.r_[0.0, fpr[last_of_each_score]], np.r_[0.0, pro[last_of_each_score]]


def aupro(masks: np.ndarray, maps: np.ndarray, max_fpr: float = 0.3) -> float:
    """Area under the PRO curve for FPR in [0, max_fpr], divided by max_fpr."""
    fpr, pro = pro_curve(masks, maps)
    end = np.searchsorted(fpr, max_fpr, side="right")
    x, y = fpr[:end], pro[:end]
    if end < len(fpr) and x[-1] < max_fpr:  # close the curve at exactly max_fpr
        y_end = np.interp(max_fpr, fpr[end - 1:end + 1], pro[end - 1:end + 1])
        x, y = np.r_[x, max_fpr], np.r_[y, y_end]
    return float(np.trapezoid(y, x) / max_fpr)


def evaluate(labels: np.ndarray, scores: np.ndarray, masks: np.ndarray, maps: np.ndarray) -> dict[str, float]:
    """All metrics for a test set: image labels/scores and pixel masks/maps (N, H, W)."""
    return {
        "image_auroc": image_auroc(labels, scores),
        "image_f1_max": image_f1_max(labels, scores),
        "pixel_auroc": pixel_auroc(masks, maps),
        "pixel_ap": pixel_ap(masks, maps),
        "aupro_0.3": aupro(masks, maps),
    }
