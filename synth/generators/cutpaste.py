"""CutPaste (Li et al., CVPR 2021): a patch or a thin rotated "scar" cut from the image and pasted
elsewhere after colour jitter. Unlike the classification-only original, every sample carries its
pixel mask: the pasted pixels."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import cv2
import numpy as np

from synth.generators.base import Generator, Sample, register

AREA_RATIO = (0.02, 0.15)
ASPECT_RATIO = 0.3  # log-uniform in [0.3, 1/0.3]
SCAR_WIDTH = (2, 16)
SCAR_HEIGHT = (10, 25)
SCAR_ROTATION = 45.0
JITTER = 0.1  # brightness, contrast, saturation and hue, as torchvision's ColorJitter(0.1, 0.1, 0.1, 0.1)


def color_jitter(patch: np.ndarray, rng: np.random.Generator, strength: float = JITTER) -> tuple[np.ndarray, dict]:
    """Brightness, contrast, saturation (factors in [1-j, 1+j]) and hue (shift in [-j, j] of a turn).

    Departure: torchvision applies the four in a random order; here the order is fixed.
    """
    brightness, contrast, saturation = (float(rng.uniform(1 - strength, 1 + strength)) for _ in range(3))
    hue = float(rng.uniform(-strength, strength))
    out = patch.astype(np.float32) * brightness
    gray = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
    out = (out - gray.mean()) * contrast + gray.mean()
    gray = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
    out = (out - gray[..., None]) * saturation + gray[..., None]
    hsv = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV_FULL)
    hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + round(hue * 256)) % 256).astype(np.uint8)
    params = {"brightness": brightness, "contrast": contrast, "saturation": saturation, "hue": hue}
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL), params


def _paste(image: np.ndarray, patch: np.ndarray, shape: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Paste ``patch`` where ``shape`` > 0 at a random position; return the image, mask and position."""
    height, width = image.shape[:2]
    ph, pw = shape.shape
    top, left = int(rng.integers(0, height - ph + 1)), int(rng.integers(0, width - pw + 1))
    out = image.copy()
    region = out[top:top + ph, left:left + pw]
    inside = shape > 0
    region[inside] = patch[inside]
    mask = np.zeros((height, width), np.uint8)
    mask[top:top + ph, left:left + pw][inside] = 255
    return out, mask, top, left


def _cut(image: np.ndarray, ph: int, pw: int, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
    height, width = image.shape[:2]
    top, left = int(rng.integers(0, height - ph + 1)), int(rng.integers(0, width - pw + 1))
    return image[top:top + ph, left:left + pw], top, left


def cutpaste_patch(image: np.ndarray, rng: np.random.Generator) -> Sample:
    """CutPaste: a rectangle of 2-15% of the image area, aspect ratio log-uniform in [0.3, 1/0.3]."""
    height, width = image.shape[:2]
    area = float(rng.uniform(*AREA_RATIO)) * height * width
    aspect = float(math.exp(rng.uniform(math.log(ASPECT_RATIO), math.log(1 / ASPECT_RATIO))))
    pw = int(np.clip(round(math.sqrt(area * aspect)), 1, width))
    ph = int(np.clip(round(math.sqrt(area / aspect)), 1, height))
    patch, src_top, src_left = _cut(image, ph, pw, rng)
    patch, jitter = color_jitter(patch, rng)
    out, mask, top, left = _paste(image, patch, np.ones((ph, pw), np.uint8), rng)
    params = {"variant": "cutpaste", "patch_height": ph, "patch_width": pw, "rotation": 0.0,
              "src_top": src_top, "src_left": src_left, "dst_top": top, "dst_left": left, **jitter}
    return Sample(out, mask, params)


def cutpaste_scar(image: np.ndarray, rng: np.random.Generator) -> Sample:
    """CutPaste-Scar: a thin rectangle (width 2-16, height 10-25 px) rotated by up to ±45°."""
    pw = int(rng.integers(SCAR_WIDTH[0], SCAR_WIDTH[1] + 1))
    ph = int(rng.integers(SCAR_HEIGHT[0], SCAR_HEIGHT[1] + 1))
    patch, src_top, src_left = _cut(image, ph, pw, rng)
    patch, jitter = color_jitter(patch, rng)
    angle = float(rng.uniform(-SCAR_ROTATION, SCAR_ROTATION))
    rotation = cv2.getRotationMatrix2D((pw / 2, ph / 2), angle, 1.0)
    cos, sin = abs(rotation[0, 0]), abs(rotation[0, 1])
    bw, bh = int(math.ceil(ph * sin + pw * cos)), int(math.ceil(ph * cos + pw * sin))
    rotation[0, 2] += bw / 2 - pw / 2
    rotation[1, 2] += bh / 2 - ph / 2
    # nearest neighbour, as the references' PIL rotation: bilinear would darken the scar's rim with the border
    rotated = cv2.warpAffine(patch, rotation, (bw, bh), flags=cv2.INTER_NEAREST)
    shape = cv2.warpAffine(np.full((ph, pw), 255, np.uint8), rotation, (bw, bh), flags=cv2.INTER_NEAREST)
    out, mask, top, left = _paste(image, rotated, shape, rng)
    params = {"variant": "scar", "patch_height": ph, "patch_width": pw, "rotation": angle,
              "src_top": src_top, "src_left": src_left, "dst_top": top, "dst_left": left, **jitter}
    return Sample(out, mask, params)


class _CutPasteBase(Generator):
    columns: ClassVar[dict[str, str]] = {
        "variant": "string", "patch_height": "int64", "patch_width": "int64", "rotation": "float64",
        "src_top": "int64", "src_left": "int64", "dst_top": "int64", "dst_left": "int64",
        "brightness": "float64", "contrast": "float64", "saturation": "float64", "hue": "float64",
    }

    def describe(self) -> dict[str, Any]:
        return {"area_ratio": AREA_RATIO, "aspect_ratio": [ASPECT_RATIO, 1 / ASPECT_RATIO],
                "scar_width": SCAR_WIDTH, "scar_height": SCAR_HEIGHT, "scar_rotation": SCAR_ROTATION,
                "color_jitter": JITTER}


@register
class CutPaste(_CutPasteBase):
    name = "cutpaste"

    def generate(self, normal: np.ndarray, rng: np.random.Generator) -> Sample:
        return cutpaste_patch(normal, rng)


@register
class CutPasteScar(_CutPasteBase):
    name = "cutpaste-scar"

    def generate(self, normal: np.ndarray, rng: np.random.Generator) -> Sample:
        return cutpaste_scar(normal, rng)


@register
class CutPasteUnion(_CutPasteBase):
    """Half the samples CutPaste, half CutPaste-Scar."""

    name = "cutpaste-union"

    def generate(self, normal: np.ndarray, rng: np.random.Generator) -> Sample:
        return (cutpaste_patch if rng.random() < 0.5 else cutpaste_scar)(normal, rng)


@register
class CutPaste3Way(_CutPasteBase):
    """The 3-way task's classes with equal probability: untouched (empty mask), CutPaste, Scar."""

    name = "cutpaste-3way"

    def generate(self, normal: np.ndarray, rng: np.random.Generator) -> Sample:
        choice = int(rng.integers(3))
        if choice == 0:
            return Sample(normal.copy(), np.zeros(normal.shape[:2], np.uint8), {"variant": "normal"})
        return (cutpaste_patch if choice == 1 else cutpaste_scar)(normal, rng)
