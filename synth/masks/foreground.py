"""Foreground masks that keep synthetic anomalies on the object (RealNet's per-class rules)."""

from __future__ import annotations

import cv2
import numpy as np

from synth.errors import SynthError

MORPH_KERNEL = np.ones((6, 6), np.uint8)
MIN_FOREGROUND_FRACTION = 0.01

# RealNet's rules for the MVTec AD classes; every other category uses "auto" unless overridden.
MVTEC_RULES: dict[str, str] = {
    **{c: "none" for c in ("carpet", "grid_texture", "leather", "tile", "wood", "cable", "transistor")},
    "pill": "otsu",
    **{c: "triangle" for c in ("hazelnut", "metal_nut", "toothbrush")},
    **{c: "otsu-inv" for c in ("bottle", "capsule", "grid", "screw", "zipper")},
}
RULES = ("none", "otsu", "otsu-inv", "triangle", "triangle-inv", "auto")


def default_rule(category: str) -> str:
    """The foreground rule of a category: RealNet's for MVTec AD classes, else automatic."""
    return MVTEC_RULES.get(category, "auto")


def _threshold(gray: np.ndarray, method: int, inverted: bool) -> np.ndarray:
    kind = cv2.THRESH_BINARY_INV if inverted else cv2.THRESH_BINARY
    _, binary = cv2.threshold(gray, 0, 255, kind | method)
    binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, MORPH_KERNEL)
    return cv2.morphologyEx(binary, cv2.MORPH_OPEN, MORPH_KERNEL)


def _auto(gray: np.ndarray) -> np.ndarray:
    """OTSU with the polarity that makes the image border mostly background; the whole image if
    neither polarity gives a plausible object."""
    binary = _threshold(gray, cv2.THRESH_OTSU, inverted=False)
    border = np.concatenate([binary[0], binary[-1], binary[:, 0], binary[:, -1]])
    if border.mean() > 127:
        binary = 255 - binary
    fraction = binary.mean() / 255
    if not 0.05 <= fraction <= 0.95:
        return np.full_like(gray, 255)
    return binary


def foreground_mask(image: np.ndarray, rule: str) -> np.ndarray:
    """HxW uint8 {0, 255} foreground of an RGB image under ``rule`` (see ``RULES``).

    An (almost) empty result falls back to the whole image so that anomalies can always be placed.
    """
    if rule not in RULES:
        raise SynthError(f"unknown foreground rule {rule!r}; choose from {', '.join(RULES)}")
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if rule == "none":
        return np.full_like(gray, 255)
    if rule == "auto":
        mask = _auto(gray)
    else:
        method = cv2.THRESH_OTSU if rule.startswith("otsu") else cv2.THRESH_TRIANGLE
        mask = _threshold(gray, method, inverted=rule.endswith("-inv"))
    if mask.mean() / 255 < MIN_FOREGROUND_FRACTION:
        return np.full_like(gray, 255)
    return mask
