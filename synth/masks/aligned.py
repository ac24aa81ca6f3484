"""Aligned masks: where an SDAS sample differs from its s = 0 twin (the same noise draws at s = 0).

The twin is what the model makes without the widened variance, so the pixels where the two differ
are where the (1 + s) widening made something new. The difference (mean absolute change over RGB,
grey levels) is thresholded, cleaned by a morphological opening (drops specks) then closing (fills
pinholes), and intersected with the foreground.
"""

from __future__ import annotations

import cv2
import numpy as np

from synth.generators.blending import changed_mask

DEFAULT_THRESHOLD = 8.0  # grey levels: the "visible" change of benchmarks/anomaly_contrast.py


def aligned_mask(sample: np.ndarray, twin: np.ndarray, threshold: float, kernel: int,
                 foreground: np.ndarray | None = None) -> np.ndarray:
    """HxW uint8 {0, 255}: |sample − twin| > ``threshold`` grey levels, opened and closed with a
    ``kernel`` x ``kernel`` ellipse, ∩ ``foreground`` (HxW {0, 255}) when given."""
    mask = changed_mask(twin, sample, threshold)
    if kernel > 1:
        element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel, kernel))
        mask = cv2.morphologyEx(cv2.morphologyEx(mask, cv2.MORPH_OPEN, element), cv2.MORPH_CLOSE, element)
    return mask if foreground is None else np.minimum(mask, foreground)
