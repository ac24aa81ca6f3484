"""Thin free-form strokes: their geometry and their anti-aliased coverage.

The geometry is DeepFill v2's free-form stroke (Yu et al., "Free-Form Image Inpainting with Gated
Convolution", ICCV 2019, Algorithm 1; ``brush_stroke_mask`` in ``generative_inpainting``): from a
uniform start, ``n`` segments whose direction alternates around ± the mean turn angle (2π/5, drawn
per stroke within ± 2π/15) and whose lengths are N(r, r/2) clipped to [0, 2r], r = diagonal / 8,
each vertex kept inside the image. Here the whole stroke is also turned by a random heading (DeepFill's
strokes all run rightwards) and may branch: at each vertex, with a given probability, a shorter
stroke starts towards one side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

SUBPIXEL_BITS = 4  # cv2 drawing with 1/16-pixel vertex positions


@dataclass(frozen=True)
class StrokeShape:
    """What a stroke may look like (DeepFill v2's defaults but the width, which is thin here)."""

    vertices: tuple[int, int] = (4, 12)  # randint(4, 12): 4..11 segments
    turn: float = math.pi / 6  # mean angle between a segment and the heading (DeepFill: 2π/5)
    turn_jitter: float = 2 * math.pi / 15
    length: float = 1 / 24  # mean segment length, fraction of the diagonal (DeepFill: 1/8)
    width: tuple[int, int] = (1, 4)  # pixels, inclusive (DeepFill: 12-40)
    branch: float = 0.15  # probability of a branch at each vertex


@dataclass(frozen=True)
class Stroke:
    points: np.ndarray  # k x 2 (x, y) float vertices
    width: int

    def __str__(self) -> str:
        return f"w{self.width}:" + " ".join(f"{x:.1f},{y:.1f}" for x, y in self.points)


def free_form_stroke(height: int, width: int, shape: StrokeShape, rng: np.random.Generator,
                     start: tuple[float, float] | None = None, heading: float | None = None,
                     vertices: int | None = None) -> Stroke:
    """One DeepFill v2 stroke in an image of ``height`` x ``width``; ``start``, ``heading`` and
    ``vertices`` are drawn unless given (a branch gives them)."""
    count = vertices if vertices is not None else int(rng.integers(*shape.vertices))
    heading = float(rng.uniform(0, 2 * math.pi)) if heading is None else heading
    low = shape.turn - float(rng.uniform(0, shape.turn_jitter))
    high = shape.turn + float(rng.uniform(0, shape.turn_jitter))
    radius = shape.length * math.hypot(height, width)
    x, y = start if start is not None else (float(rng.uniform(0, width)), float(rng.uniform(0, height)))
    points = [(x, y)]
    for i in range(count):
        turn = float(rng.uniform(low, high))
        angle = heading + (-turn if i % 2 == 0 else turn)
        step = float(np.clip(rng.normal(radius, radius / 2), 0, 2 * radius))
        x = float(np.clip(x + step * math.cos(angle), 0, width - 1))
        y = float(np.clip(y + step * math.sin(angle), 0, height - 1))
        points.append((x, y))
    return Stroke(np.array(points), int(rng.integers(shape.width[0], shape.width[1] + 1)))


def branched_strokes(height: int, width: int, shape: StrokeShape, rng: np.random.Generator) -> list[Stroke]:
    """A stroke and its branches: at each inner vertex, with probability ``shape.branch``, a stroke of
    half as many segments, no wider than its parent, heading 30-60° to one side of the parent's segment."""
    main = free_form_stroke(height, width, shape, rng)
    strokes = [main]
    for k in range(1, len(main.points) - 1):
        if rng.random() >= shape.branch:
            continue
        dx, dy = main.points[k] - main.points[k - 1]
        side = 1 if rng.random() < 0.5 else -1
        heading = math.atan2(dy, dx) + side * math.radians(float(rng.uniform(30, 60)))
        branch = free_form_stroke(height, width, shape, rng, tuple(main.points[k]), heading,
                                  max(1, (len(main.points) - 1) // 2))
        strokes.append(Stroke(branch.points, min(branch.width, main.width)))
    return strokes


def coverage(strokes: list[Stroke], height: int, width: int) -> np.ndarray:
    """HxW float32 in [0, 1]: how much of each pixel the anti-aliased strokes cover."""
    canvas = np.zeros((height, width), np.uint8)
    scale = 1 << SUBPIXEL_BITS
    for stroke in strokes:
        points = np.round(stroke.points * scale).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [points], False, 255, stroke.width, cv2.LINE_AA, SUBPIXEL_BITS)
    return canvas.astype(np.float32) / 255
