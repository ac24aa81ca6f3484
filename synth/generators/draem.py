"""DRAEM (Zavrtanik et al., ICCV 2021): an augmented texture blended into the image through a Perlin mask.

Follows the reference ``data_loader.py``: the texture (resized to the image size) gets 3 of the ten
augmentations (``synth.generators.augment``), the mask is Perlin noise thresholded at 0.5, and
``out = I·(1−M) + (1−β)·T·M + β·I·M`` with β = 0.8·U(0, 1). Departures, all for a dataset writer
(see docs/generators/draem.md): no 50 % "no anomaly" branch (use ``--generator mix --mix normal=..,draem=..``),
the mask is redrawn until non-empty, the normal image's ±90° rotation (DRAEM: probability 0.3) is
off unless ``-o rotate_normal=true``, and ``--foreground RULE`` may restrict the mask (DRAEM does not:
no restriction by default).
"""

from __future__ import annotations

from typing import Any, ClassVar

import cv2
import numpy as np

from synth.data.size import ImageSize
from synth.data.textures import TextureSource, open_textures
from synth.generators.augment import NUM_OPS, random_augment, rotate
from synth.generators.base import Generator, GeneratorSettings, Sample, register
from synth.masks import anomaly_mask, check_rule, foreground_mask

DRAEM_BETA = (0.0, 0.8)
NORMAL_ROTATION_PROBABILITY = 0.3  # DRAEM: torch.rand(1) > 0.7
NORMAL_ROTATION = 90.0


def blend(image: np.ndarray, source: np.ndarray, mask: np.ndarray, beta: float) -> np.ndarray:
    """``image`` outside ``mask``; ``(1 − beta)·source + beta·image`` inside (rounded to uint8)."""
    mixed = cv2.addWeighted(source, 1.0 - beta, image, beta, 0.0)
    return cv2.copyTo(mixed, mask, image.copy())


def region(normal: np.ndarray, rule: str | None, rng: np.random.Generator) -> np.ndarray:
    """A non-empty Perlin mask, restricted to the foreground of ``normal`` under ``rule`` if given."""
    foreground = foreground_mask(normal, rule) if rule is not None else None
    return anomaly_mask(foreground, rng, shape=normal.shape[:2])


def settings_textures(settings: GeneratorSettings) -> TextureSource:
    return open_textures(settings.textures, tuple(settings.texture_classes),
                         tuple(settings.exclude_texture_classes), settings.size)


class TextureAnomaly(Generator):
    """An augmented external texture blended through a (foreground-restricted) Perlin mask."""

    columns: ClassVar[dict[str, str]] = {"texture": "string", "ops": "string", "beta": "float64"}
    beta_range: ClassVar[tuple[float, float]]

    def __init__(self, textures: TextureSource, foreground: str | None = None, num_ops: int = NUM_OPS):
        self.textures = textures
        self.foreground = check_rule(foreground)
        self.num_ops = num_ops

    def generate(self, normal: np.ndarray, rng: np.random.Generator) -> Sample:
        index = self.textures.pick(rng)
        texture, ops = random_augment(self.textures.image(index, ImageSize.of(normal)), rng, self.num_ops)
        mask = region(normal, self.foreground, rng)
        beta = float(rng.uniform(*self.beta_range))
        params = {"texture": self.textures.ids[index], "ops": ops, "beta": beta}
        return Sample(blend(normal, texture, mask, beta), mask, params)

    def describe(self) -> dict[str, Any]:
        return {"textures": self.textures.description, "num_textures": len(self.textures),
                "foreground": self.foreground or "none", "num_ops": self.num_ops, "beta_range": list(self.beta_range)}


@register
class Draem(TextureAnomaly):
    name = "draem"
    columns = {**TextureAnomaly.columns, "normal_rotation": "float64"}
    beta_range = DRAEM_BETA

    def __init__(self, textures: TextureSource, foreground: str | None = None, num_ops: int = NUM_OPS,
                 rotate_normal: bool = False):
        super().__init__(textures, foreground, num_ops)
        self.rotate_normal = rotate_normal

    @classmethod
    def from_settings(cls, settings: GeneratorSettings) -> "Draem":
        return cls(settings_textures(settings), settings.foreground,
                   rotate_normal=settings.flag("rotate_normal"))

    def generate(self, normal: np.ndarray, rng: np.random.Generator) -> Sample:
        rotation = 0.0
        if self.rotate_normal and rng.random() < NORMAL_ROTATION_PROBABILITY:
            rotation = float(rng.uniform(-NORMAL_ROTATION, NORMAL_ROTATION))
            normal = rotate(normal, rotation)
        sample = super().generate(normal, rng)
        sample.params["normal_rotation"] = rotation
        return sample

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "rotate_normal": self.rotate_normal}
