"""Perlin-noise anomaly masks as in DRAEM and RealNet (vectorised numpy)."""

from __future__ import annotations

import cv2
import numpy as np

MIN_SCALE_EXPONENT = 0
MAX_SCALE_EXPONENT = 6  # exclusive: scales 2**0 .. 2**5 on each axis, as DRAEM/RealNet
THRESHOLD = 0.5
MAX_ROTATION = 90.0


def _fade(t: np.ndarray) -> np.ndarray:
    return 6 * t**5 - 15 * t**4 + 10 * t**3


def perlin_noise(shape: tuple[int, int], res: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """2-D gradient (Perlin) noise of ``shape`` with ``res`` periods per axis, values in about [-1, 1].

    Computed on a grid padded to a multiple of ``res`` and cropped, so any shape works.
    """
    ry, rx = res
    cell_y, cell_x = -(-shape[0] // ry), -(-shape[1] // rx)
    angles = 2 * np.pi * rng.random((ry + 1, rx + 1))
    gradients = np.stack((np.cos(angles), np.sin(angles)), axis=-1)
    ys = (np.arange(ry * cell_y) / cell_y)[:, None]
    xs = (np.arange(rx * cell_x) / cell_x)[None, :]
    iy, ix = ys.astype(int), xs.astype(int)
    fy, fx = ys - iy, xs - ix

    def corner(dy: int, dx: int) -> np.ndarray:
        g = gradients[iy + dy, ix + dx]
        return g[..., 0] * (fy - dy) + g[..., 1] * (fx - dx)

    uy, ux = _fade(fy), _fade(fx)
    top = corner(0, 0) * (1 - ux) + corner(0, 1) * ux
    bottom = corner(1, 0) * (1 - ux) + corner(1, 1) * ux
    noise = np.sqrt(2) * (top * (1 - uy) + bottom * uy)
    return noise[: shape[0], : shape[1]]


def perlin_mask(size: int, rng: np.random.Generator, threshold: float = THRESHOLD) -> np.ndarray:
    """A binary HxW uint8 {0, 255} mask: Perlin noise with scale 2**randint(0, 6) per axis,
    rotated by U(-90, 90) degrees, thresholded at ``threshold``."""
    scale_y = 2 ** int(rng.integers(MIN_SCALE_EXPONENT, MAX_SCALE_EXPONENT))
    scale_x = 2 ** int(rng.integers(MIN_SCALE_EXPONENT, MAX_SCALE_EXPONENT))
    noise = perlin_noise((size, size), (scale_y, scale_x), rng).astype(np.float32)
    angle = float(rng.uniform(-MAX_ROTATION, MAX_ROTATION))
    rotation = cv2.getRotationMatrix2D((size / 2 - 0.5, size / 2 - 0.5), angle, 1.0)
    noise = cv2.warpAffine(noise, rotation, (size, size), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return np.where(noise > threshold, 255, 0).astype(np.uint8)


def perlin_noise_reference(shape: tuple[int, int], res: tuple[int, int], seed: int) -> np.ndarray:
    """The same kind of noise from the ``noise`` package (one C call per pixel); kept for the benchmark."""
    import noise

    ys = np.arange(shape[0]) * res[0] / shape[0]
    xs = np.arange(shape[1]) * res[1] / shape[1]
    return np.array([[noise.pnoise2(x, y, base=seed % 256) for x in xs] for y in ys], np.float32) * np.sqrt(2)
