"""Poisson blending (seamless cloning) of a patch into an image, and the mask of what it changed.

A thin wrapper over OpenCV's ``cv2.seamlessClone`` (Pérez et al., "Poisson Image Editing", 2003):
``normal`` keeps the patch's gradients, ``mixed`` keeps at each pixel the stronger of the patch's
and the image's gradients. Any generator may use it; NSA (``synth.generators.nsa``) does.
"""

from __future__ import annotations

import cv2
import numpy as np

CLONE_MODES: dict[str, int] = {"normal": cv2.NORMAL_CLONE, "mixed": cv2.MIXED_CLONE}
MIN_CLONE_PIXELS = 50  # below this OpenCV's solver may fail (NSA skips such patches too)


def poisson_paste(image: np.ndarray, patch: np.ndarray, shape: np.ndarray, top: int, left: int,
                  mode: str = "normal") -> np.ndarray | None:
    """Seamlessly clone ``patch`` (h x w x 3) where ``shape`` (h x w, > 0 inside) is set, with its
    top-left corner at (``top``, ``left``) of ``image``; None when OpenCV cannot (too small a shape,
    or a region touching the image border).

    The shape's outer one-pixel frame is cleared, as NSA does, so that the solver has a boundary.
    """
    height, width = shape.shape
    inside = np.where(shape > 0, 255, 0).astype(np.uint8)
    inside[0], inside[-1], inside[:, 0], inside[:, -1] = 0, 0, 0, 0
    if np.count_nonzero(inside) < MIN_CLONE_PIXELS:
        return None
    # seamlessClone centres the bounding box of the shape's non-zero pixels on ``center``
    ys, xs = np.nonzero(inside)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    center = (left + (x0 + x1) // 2, top + (y0 + y1) // 2)
    try:
        return cv2.seamlessClone(np.ascontiguousarray(patch), image, inside, center, CLONE_MODES[mode])
    except cv2.error:
        return None


def changed_mask(before: np.ndarray, after: np.ndarray, tolerance: float = 1.0, median: int = 0) -> np.ndarray:
    """HxW uint8 {0, 255}: pixels whose mean absolute change over the channels exceeds ``tolerance``
    (grey levels), then median-filtered with a ``median`` x ``median`` window if ``median`` > 1."""
    change = np.abs(before.astype(np.int16) - after.astype(np.int16)).mean(axis=-1)
    mask = np.where(change > tolerance, 255, 0).astype(np.uint8)
    return cv2.medianBlur(mask, median) if median > 1 else mask
