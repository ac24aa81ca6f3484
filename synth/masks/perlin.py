"""Perlin-noise anomaly masks as in DRAEM and RealNet.

The noise is DRAEM's ``rand_perlin_2d_np`` (same gradients, same fade curve), computed separably
in float32: every lattice corner's term ``g · (f − d) · fade`` is a row weight times a gradient
times a column weight, so the gradient lattice is interpolated along y first (an H x (rx+1)
array), then along x, with no BLAS call (a matrix-product form was as fast on an idle core but
~100x slower when OpenBLAS threads compete for busy cores). Figures against the former per-pixel
gather form and the ``noise`` package: docs/benchmarks/speed.md, "## Generators".
"""

from __future__ import annotations

import cv2
import numpy as np

MIN_SCALE_EXPONENT = 0
MAX_SCALE_EXPONENT = 6  # exclusive: scales 2**0 .. 2**5 on each axis, as DRAEM/RealNet
THRESHOLD = 0.5
MAX_ROTATION = 90.0

Weights = tuple[np.ndarray, np.ndarray]  # per-pixel weights of the lower and the upper lattice line


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6 - 15) + 10)


def _axis_weights(length: int, periods: int) -> tuple[np.ndarray, Weights, Weights]:
    """Interpolation along one axis: each pixel's lower lattice line, and the weights of that line
    and the next as (plain, ramp) pairs.

    ``plain`` is the fade weight, ``ramp`` the same weight times the signed distance from the line:
    the two factors of a corner's term ``g · (f − d) · fade``.
    """
    cell = -(-length // periods)  # the grid is padded to a multiple of ``periods`` and cropped
    position = np.arange(length) / cell
    index = position.astype(np.int64)
    frac = position - index
    fade = _fade(frac)
    plain = ((1 - fade).astype(np.float32), fade.astype(np.float32))
    ramp = (((1 - fade) * frac).astype(np.float32), (fade * (frac - 1)).astype(np.float32))
    return index, plain, ramp


def _interpolate(lattice: np.ndarray, rows: Weights, iy: np.ndarray, cols: Weights, ix: np.ndarray) -> np.ndarray:
    """Σ over the 4 corners of row weight × lattice value × column weight, one axis at a time."""
    along_y = rows[0][:, None] * lattice[iy] + rows[1][:, None] * lattice[iy + 1]  # (H, rx + 1)
    return along_y[:, ix] * cols[0] + along_y[:, ix + 1] * cols[1]


def perlin_noise(shape: tuple[int, int], res: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """2-D gradient (Perlin) noise (float32) of ``shape`` with ``res`` periods per axis, values in
    about [-1, 1]. Gradient angles are drawn from ``rng`` (one per lattice point, as DRAEM); any
    shape works.
    """
    ry, rx = res
    angles = 2 * np.pi * rng.random((ry + 1, rx + 1))
    iy, plain_y, ramp_y = _axis_weights(shape[0], ry)
    ix, plain_x, ramp_x = _axis_weights(shape[1], rx)
    # gradient component 0 (cos) multiplies the row offset, component 1 (sin) the column offset
    noise = _interpolate(np.cos(angles).astype(np.float32), ramp_y, iy, plain_x, ix)
    noise += _interpolate(np.sin(angles).astype(np.float32), plain_y, iy, ramp_x, ix)
    noise *= np.float32(np.sqrt(2))
    return noise


def perlin_mask(shape: tuple[int, int], rng: np.random.Generator, threshold: float = THRESHOLD) -> np.ndarray:
    """A binary uint8 {0, 255} mask of ``shape`` (H, W): Perlin noise with scale 2**randint(0, 6) periods
    per axis (over the image's height and width: a non-square image gets stretched cells), rotated by
    U(-90, 90) degrees about the centre, thresholded at ``threshold``."""
    height, width = shape
    scale_y = 2 ** int(rng.integers(MIN_SCALE_EXPONENT, MAX_SCALE_EXPONENT))
    scale_x = 2 ** int(rng.integers(MIN_SCALE_EXPONENT, MAX_SCALE_EXPONENT))
    noise = perlin_noise((height, width), (scale_y, scale_x), rng)
    angle = float(rng.uniform(-MAX_ROTATION, MAX_ROTATION))
    rotation = cv2.getRotationMatrix2D((width / 2 - 0.5, height / 2 - 0.5), angle, 1.0)
    noise = cv2.warpAffine(noise, rotation, (width, height), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    _, mask = cv2.threshold(noise, threshold, 255, cv2.THRESH_BINARY)
    return mask.astype(np.uint8)


def perlin_noise_reference(shape: tuple[int, int], res: tuple[int, int], seed: int) -> np.ndarray:
    """The same kind of noise from the ``noise`` package (one C call per pixel); kept for the benchmark."""
    import noise

    ys = np.arange(shape[0]) * res[0] / shape[0]
    xs = np.arange(shape[1]) * res[1] / shape[1]
    return np.array([[noise.pnoise2(x, y, base=seed % 256) for x in xs] for y in ys], np.float32) * np.sqrt(2)
