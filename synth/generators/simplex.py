"""Simplex-noise anomalies as in RD++ (Tien et al., "Revisiting Reverse Distillation for Anomaly
Detection", CVPR 2023), whose fractal noise comes from AnoDDPM (Wyatt et al., CVPR-W 2022).

A smooth, low-frequency brightness change: fractal gradient noise (``octaves`` layers, each with
half the period and ``persistence`` times the amplitude of the one before, the first with a period
of ``BASE_PERIOD`` of the shorter side) times ``scale`` is added to the image inside a rectangle
whose sides are drawn per axis from ``patch`` (fractions of that side). Defaults are the reference
``dataset.py``'s at 256 px: sides randint(10, 256 // 8) px, scale 0.2 (of the full range), 6 octaves,
persistence 0.6, first period 32 px. The mask is exactly the set of pixels whose value changed.

Departures (docs/generators/simplex.md): the noise is the repository's vectorised Perlin gradient
noise (``synth.masks.perlin``) rather than OpenSimplex (the same octave sum; pure-Python OpenSimplex
costs about 0.5 s per RD++ patch and 20 s per 256² field); one noise field shifts every channel alike
(RD++ draws the three channels 1/32 of a period apart, nearly the same field); sizes scale with the
image rather than being fixed at 256 px; ``--foreground`` may restrict the change to the object.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from synth.errors import SynthError
from synth.generators.base import Generator, GeneratorSettings, Sample, register
from synth.masks import check_rule, foreground_mask, perlin_noise

REFERENCE_SIDE = 256
PATCH = (10 / REFERENCE_SIDE, 1 / 8)  # RD++: randint(10, size // 8) px per axis at 256 px
SCALE = (0.2, 0.2)  # RD++: 0.2 x noise, added to the image in [0, 1]
OCTAVES = 6
PERSISTENCE = 0.6
BASE_PERIOD = 32 / REFERENCE_SIDE  # AnoDDPM's frequency=32: coordinates x / 32 px, of the shorter side
SAMPLE_TRIES = 20


def fractal_noise(shape: tuple[int, int], period: float, rng: np.random.Generator, octaves: int = OCTAVES,
                  persistence: float = PERSISTENCE) -> np.ndarray:
    """Octave sum of gradient noise of ``shape``: octave k has period ``period`` / 2**k px and amplitude
    ``persistence``**k (not normalised, as AnoDDPM's ``rand_2d_octaves``)."""
    height, width = shape
    total = np.zeros(shape, np.float32)
    amplitude = 1.0
    for octave in range(octaves):
        cell = max(round(period / 2 ** octave), 1)  # whole pixels per period; the field is cropped, not stretched
        periods = (math.ceil(height / cell), math.ceil(width / cell))
        field = perlin_noise((periods[0] * cell, periods[1] * cell), periods, rng)
        total += np.float32(amplitude) * field[:height, :width]
        amplitude *= persistence
    return total


def side_range(side: int, fractions: tuple[float, float]) -> tuple[int, int]:
    """Whole-pixel bounds [lo, hi) of a patch side drawn from ``fractions`` of ``side`` (at least 1 px)."""
    low = max(int(round(fractions[0] * side)), 1)
    high = max(int(round(fractions[1] * side)), low + 1)
    return min(low, side - 1), min(high, side)


@register
class Simplex(Generator):
    name = "simplex"
    columns: ClassVar[dict[str, str]] = {"box": "string", "scale": "float64"}

    def __init__(self, patch: tuple[float, float] = PATCH, scale: tuple[float, float] = SCALE,
                 foreground: str | None = None):
        if patch[0] <= 0 or patch[1] > 1:
            raise SynthError(f"option patch must be fractions of the side in (0, 1], got {patch[0]}:{patch[1]}")
        if scale[1] <= 0:
            raise SynthError("option scale must be positive")
        self.patch = patch
        self.scale = scale
        self.foreground = check_rule(foreground)

    @classmethod
    def from_settings(cls, settings: GeneratorSettings) -> "Simplex":
        return cls(settings.number_range("patch", PATCH, upper=1), settings.number_range("scale", SCALE),
                   settings.foreground)

    def generate(self, normal: np.ndarray, rng: np.random.Generator) -> Sample:
        height, width = normal.shape[:2]
        foreground = None if self.foreground is None else foreground_mask(normal, self.foreground)
        period = BASE_PERIOD * min(height, width)
        for _ in range(SAMPLE_TRIES):
            box_h, box_w = (int(rng.integers(*side_range(side, self.patch))) for side in (height, width))
            top, left = int(rng.integers(0, height - box_h + 1)), int(rng.integers(0, width - box_w + 1))
            scale = float(rng.uniform(*self.scale))
            change = np.zeros((height, width), np.float32)
            change[top:top + box_h, left:left + box_w] = 255 * scale * fractal_noise((box_h, box_w), period, rng)
            if foreground is not None:
                change *= foreground.astype(np.float32) / 255
            out = np.clip(np.rint(normal.astype(np.float32) + change[..., None]), 0, 255).astype(np.uint8)
            mask = np.where((out != normal).any(axis=2), 255, 0).astype(np.uint8)
            if mask.any():
                return Sample(out, mask, {"box": f"{top},{left},{box_h},{box_w}", "scale": scale})
        raise SynthError(f"simplex noise changed no pixel in {SAMPLE_TRIES} tries (scale {self.scale})")

    def describe(self) -> dict[str, Any]:
        return {"patch": list(self.patch), "scale": list(self.scale), "octaves": OCTAVES, "persistence": PERSISTENCE,
                "base_period": BASE_PERIOD, "foreground": self.foreground or "none"}
