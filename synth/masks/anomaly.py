"""Anomaly masks: a Perlin mask restricted to the foreground, redrawn until non-empty."""

from __future__ import annotations

import numpy as np

from synth.errors import SynthError
from synth.masks.perlin import THRESHOLD, perlin_mask

MAX_TRIES = 50


def anomaly_mask(foreground: np.ndarray | None, rng: np.random.Generator, threshold: float = THRESHOLD,
                 shape: tuple[int, int] | None = None) -> np.ndarray:
    """Perlin mask ∩ ``foreground`` (HxW {0, 255}); ``foreground=None`` means the whole image of ``shape`` (H, W)."""
    shape = foreground.shape[:2] if foreground is not None else shape
    if shape is None:
        raise ValueError("give a foreground mask or a shape")
    for _ in range(MAX_TRIES):
        mask = perlin_mask(shape, rng, threshold)
        if foreground is not None:
            mask = np.minimum(mask, foreground)
        if mask.any():
            return mask
    raise SynthError(f"could not draw a non-empty anomaly mask inside the foreground in {MAX_TRIES} tries")
