"""Smooth intensity change (Baugh et al., "Many Tasks Make Light Work: Learning to Localise Medical
Anomalies from Multiple Synthetic Tasks", MICCAI 2023): broad regions made brighter or darker, the
change rising smoothly from the region's edge.

Follows the reference code (``multitask_method/tasks``: ``SmoothIntensityChangeTask``, ``BaseTask``,
``EitherDeformedHypershapePatchMaker``, ``nsa_sample_dimension``): 1 to 4 regions (each further one
with probability 1/2); each a rectangle or an ellipse (1/2 each) with sides (0.03 + Gamma(2, 0.1)) x
the image side, clipped to [0.06, 0.8] x side, sheared by N(0, 0.2) along each axis and rotated by
U(−90°, 90°), scaled down if it then outgrows 0.8 x side, placed uniformly inside the image. Inside
a region the change is ``c`` x min(d / r, 1), where d is the distance to the region's edge, the ramp
r = min(side x (0.02 + Gamma(3, 0.01)), max d) and c = ±(scale/2 + Gamma(3, scale)) with scale 0.2;
the result is clipped to the image's own range. The mask is exactly the set of pixels that changed.

Departures (docs/generators/smooth-intensity.md): the reference works on z-normalised medical images, so
``c`` here is in units of the image's grey-level standard deviation; one sign and one shift for every
channel (the reference draws a sign per channel of its one-channel scans), so colour is kept;
``--foreground`` multiplies the change by the object's mask after asking for half of the region on
it (the reference's placement rule); ``-o scale=K`` sets the scale (0.2 by default, as the paper).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import cv2
import numpy as np

from synth.errors import SynthError
from synth.generators.base import Generator, GeneratorSettings, Sample, register
from synth.masks import check_rule, foreground_mask

SCALE = (0.2, 0.2)  # intensity_task_scale of the paper's configurations
MAX_REGIONS = 4
SIDE_GAMMA = (2.0, 0.1, 0.03)  # shape, scale, offset: side = (offset + Gamma) x image side (nsa_sample_dimension)
SIDE_BOUNDS = (0.06, 0.8)  # BaseTask's min_anom_prop, max_anom_prop
SHEAR_STD = 0.2
RAMP_GAMMA = (3.0, 0.01, 0.02)  # ramp = (offset + Gamma) x shorter side
CHANGE_GAMMA_SHAPE = 3.0  # c = scale/2 + Gamma(3, scale)
MIN_OBJECT = 0.5  # share of a region that must lie on the foreground (BaseTask)
PLACEMENT_TRIES = 100
SAMPLE_TRIES = 20
ELLIPSE_POINTS = 5  # degrees between the vertices of the ellipse polygon


def region_polygon(height: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A deformed rectangle or ellipse as an N x 2 float polygon (x, y) centred on 0, and its kind."""
    bounds = [(round(SIDE_BOUNDS[0] * side), round(SIDE_BOUNDS[1] * side)) for side in (height, width)]
    shape, scale, offset = SIDE_GAMMA
    sides = [int(np.clip((offset + rng.gamma(shape, scale)) * side, lo, hi))
             for side, (lo, hi) in zip((height, width), bounds)]
    kind = "rectangle" if rng.random() < 0.5 else "ellipse"
    half_h, half_w = (sides[0] - 1) / 2, (sides[1] - 1) / 2
    if kind == "rectangle":
        points = np.array([[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]])
    else:
        angles = np.radians(np.arange(0, 360, ELLIPSE_POINTS))
        points = np.stack([half_w * np.cos(angles), half_h * np.sin(angles)], axis=1)
    shear = np.array([[1.0, rng.normal(scale=SHEAR_STD)], [rng.normal(scale=SHEAR_STD), 1.0]])
    angle = rng.uniform(-math.pi / 2, math.pi / 2)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    points = points @ (rotation @ shear).T
    extent = points.max(axis=0) - points.min(axis=0) + 1  # (x, y)
    too_big = max(extent[0] / bounds[1][1], extent[1] / bounds[0][1])
    if too_big > 1:
        points /= too_big
    return points, kind


def ramp_weights(region: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    """min(d / r, 1) inside ``region`` (uint8 {0, 1}), d the distance to its edge, r drawn as the paper."""
    distance = cv2.distanceTransform(region, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    shape, scale, offset = RAMP_GAMMA
    ramp = min(side * (offset + rng.gamma(shape, scale)), float(distance.max()))
    return np.minimum(distance / max(ramp, 1e-6), 1.0).astype(np.float32)


@register
class SmoothIntensity(Generator):
    name = "smooth-intensity"
    columns: ClassVar[dict[str, str]] = {"num_regions": "int64", "regions": "string"}

    def __init__(self, scale: tuple[float, float] = SCALE, foreground: str | None = None):
        if scale[1] <= 0:
            raise SynthError("option scale must be positive")
        self.scale = scale
        self.foreground = check_rule(foreground)

    @classmethod
    def from_settings(cls, settings: GeneratorSettings) -> "SmoothIntensity":
        return cls(settings.number_range("scale", SCALE), settings.foreground)

    def place(self, points: np.ndarray, height: int, width: int, foreground: np.ndarray | None,
              rng: np.random.Generator) -> np.ndarray:
        """The region drawn at a uniform place where it fits and, with a foreground, lies at least half on it
        (after ``PLACEMENT_TRIES`` misses the last place drawn is kept)."""
        low, high = points.min(axis=0), points.max(axis=0)
        for _ in range(PLACEMENT_TRIES):
            offset = np.array([rng.uniform(-low[0], max(width - 1 - high[0], -low[0])),
                               rng.uniform(-low[1], max(height - 1 - high[1], -low[1]))])
            region = np.zeros((height, width), np.uint8)
            cv2.fillPoly(region, [np.rint((points + offset) * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
            if foreground is None or (region & (foreground > 0)).sum() >= MIN_OBJECT * region.sum():
                return region
        return region

    def generate(self, normal: np.ndarray, rng: np.random.Generator) -> Sample:
        height, width = normal.shape[:2]
        foreground = None if self.foreground is None else foreground_mask(normal, self.foreground)
        gray = cv2.cvtColor(normal, cv2.COLOR_RGB2GRAY).astype(np.float32)
        unit = max(float(gray.std()), 1.0)  # one standard deviation of the image's grey levels
        low, high = normal.reshape(-1, 3).min(axis=0), normal.reshape(-1, 3).max(axis=0)
        for _ in range(SAMPLE_TRIES):
            values, regions = normal.astype(np.float32), []
            while True:
                points, kind = region_polygon(height, width, rng)
                region = self.place(points, height, width, foreground, rng)
                scale = float(rng.uniform(*self.scale))
                change = (scale / 2 + rng.gamma(CHANGE_GAMMA_SHAPE, scale)) * (1 if rng.random() < 0.5 else -1)
                weights = ramp_weights(region, min(height, width), rng)
                if foreground is not None:
                    weights *= foreground.astype(np.float32) / 255
                values = np.clip(values + (change * unit * weights)[..., None], low, high)
                ys, xs = np.nonzero(region)
                if len(ys):
                    regions.append(f"{kind}:{ys.min()},{xs.min()},{ys.max() - ys.min() + 1},{xs.max() - xs.min() + 1}"
                                   f"@{change:+.3f}")
                if len(regions) == MAX_REGIONS or rng.random() > 0.5:
                    break
            out = np.rint(values).astype(np.uint8)
            mask = np.where((out != normal).any(axis=2), 255, 0).astype(np.uint8)
            if mask.any():
                return Sample(out, mask, {"num_regions": len(regions), "regions": ";".join(regions)})
        raise SynthError(f"smooth intensity change altered no pixel in {SAMPLE_TRIES} tries (scale {self.scale})")

    def describe(self) -> dict[str, Any]:
        return {"scale": list(self.scale), "max_regions": MAX_REGIONS, "side_bounds": list(SIDE_BOUNDS),
                "shear_std": SHEAR_STD, "foreground": self.foreground or "none", "unit": "grey-level std of the image"}
