"""The ``strokes`` generator: thin cracks, scratches and frays drawn into the texture.

1-3 thin free-form strokes (``synth.generators.stroke_geometry``: DeepFill v2's stroke geometry, 1-4 px wide,
optionally branching), anti-aliased. Inside a stroke the grey level moves to the local texture's
mean (Gaussian, σ = ``LOCAL_SIGMA`` px) shifted by ``contrast`` x its local standard deviation
(at least ``MIN_STD`` grey levels), darker or brighter; the same shift goes to every channel, so the
hue stays. The mask is exactly the set of pixels whose value changed. docs/generators/strokes.md
lists where each default comes from.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import cv2
import numpy as np

from synth.errors import SynthError
from synth.generators.base import Generator, GeneratorSettings, Sample, register
from synth.generators.stroke_geometry import StrokeShape, branched_strokes, coverage
from synth.masks import check_rule, foreground_mask

NUM_STROKES = (1, 4)  # DeepFill v2: randint(1, 4) strokes
CONTRAST = (1.0, 4.0)  # local standard deviations
POLARITIES = ("both", "dark", "bright")
LOCAL_SIGMA = 8.0
MIN_STD = 3.0  # grey levels: a flat surface still gets a visible (faint) stroke
SAMPLE_TRIES = 20


def local_statistics(gray: np.ndarray, sigma: float = LOCAL_SIGMA) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-weighted local mean and standard deviation of a float32 grey image."""
    mean = cv2.GaussianBlur(gray, (0, 0), sigma)
    square = cv2.GaussianBlur(gray * gray, (0, 0), sigma)
    return mean, np.sqrt(np.maximum(square - mean * mean, 0))


def shade(image: np.ndarray, alpha: np.ndarray, contrast: float, sign: int) -> np.ndarray:
    """Move the grey level under ``alpha`` towards local mean + sign·contrast·local std (every channel alike)."""
    values = image.astype(np.float32)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    mean, std = local_statistics(gray)
    target = mean + sign * contrast * np.maximum(std, MIN_STD)
    shifted = values + (alpha * (target - gray))[..., None]
    return np.clip(np.rint(shifted), 0, 255).astype(np.uint8)


@register
class Strokes(Generator):
    name = "strokes"
    columns: ClassVar[dict[str, str]] = {"polarity": "string", "contrast": "float64", "num_strokes": "int64",
                                         "paths": "string"}

    def __init__(self, shape: StrokeShape = StrokeShape(), contrast: tuple[float, float] = CONTRAST,
                 polarity: str = "both", foreground: str | None = None):
        if polarity not in POLARITIES:
            raise SynthError(f"option polarity must be one of {', '.join(POLARITIES)}, got {polarity!r}")
        self.shape = shape
        self.contrast = contrast
        self.polarity = polarity
        self.foreground = check_rule(foreground)

    @classmethod
    def from_settings(cls, settings: GeneratorSettings) -> "Strokes":
        default = StrokeShape()
        width = settings.number_range("width", (float(default.width[0]), float(default.width[1])))
        if width[0] < 1 or not all(w == int(w) for w in width):
            raise SynthError(f"option width must be whole pixels >= 1, like 2 or 1:4, got {settings.extra['width']!r}")
        length = settings.number_range("length", (default.length, default.length))
        turn = settings.number_range("curvature", (math.degrees(default.turn),) * 2, upper=90)
        branch = settings.number_range("branch", (default.branch, default.branch), upper=1)
        for key, value in (("length", length), ("curvature", turn), ("branch", branch)):
            if value[0] != value[1]:
                raise SynthError(f"option {key} takes one value, not a range")
        if length[0] <= 0:
            raise SynthError("option length must be positive (a fraction of the image diagonal)")
        shape = StrokeShape(default.vertices, math.radians(turn[0]), default.turn_jitter, length[0],
                            (int(width[0]), int(width[1])), branch[0])
        return cls(shape, settings.number_range("contrast", CONTRAST),
                   settings.choice("polarity", "both", POLARITIES), settings.foreground)

    def generate(self, normal: np.ndarray, rng: np.random.Generator) -> Sample:
        height, width = normal.shape[:2]
        foreground = None if self.foreground is None else foreground_mask(normal, self.foreground)
        for _ in range(SAMPLE_TRIES):
            strokes = [s for _ in range(int(rng.integers(*NUM_STROKES)))
                       for s in branched_strokes(height, width, self.shape, rng)]
            contrast = float(rng.uniform(*self.contrast))
            dark = self.polarity == "dark" or (self.polarity == "both" and rng.random() < 0.5)
            alpha = coverage(strokes, height, width)
            if foreground is not None:
                alpha *= foreground.astype(np.float32) / 255
            out = shade(normal, alpha, contrast, -1 if dark else 1)
            mask = np.where((out != normal).any(axis=2), 255, 0).astype(np.uint8)
            if mask.any():
                params = {"polarity": "dark" if dark else "bright", "contrast": contrast,
                          "num_strokes": len(strokes), "paths": ";".join(map(str, strokes))}
                return Sample(out, mask, params)
        raise SynthError(f"strokes changed no pixel in {SAMPLE_TRIES} tries (contrast {self.contrast})")

    def describe(self) -> dict[str, Any]:
        shape = self.shape
        return {"vertices": shape.vertices, "curvature_deg": math.degrees(shape.turn),
                "curvature_jitter_deg": math.degrees(shape.turn_jitter), "length": shape.length,
                "width": shape.width, "branch": shape.branch, "num_strokes": NUM_STROKES,
                "contrast": list(self.contrast), "polarity": self.polarity, "local_sigma": LOCAL_SIGMA,
                "min_std": MIN_STD, "foreground": self.foreground or "none"}
