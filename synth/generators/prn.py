"""PRN's simulated anomalies (Zhang et al., CVPR 2023), which has no public code.

* ``prn-hea`` (heterogeneous): an augmented external texture (the DTD) through a Perlin ∩ foreground
  mask — DRAEM's recipe restricted to the object, with opacity β ~ U(0.2, 0.8).
* ``prn-hoa`` (homogeneous): the normal image itself, augmented with 3 of DRAEM's ops and shuffled
  as a grid of tiles (8 x 8 by default), pasted through a Perlin ∩ foreground mask with the same β.

The foreground rule is ``--foreground`` or the category's default (RealNet's rules for its classes,
``auto`` elsewhere). Every choice beyond the paper is listed in docs/generators/prn.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from synth.errors import SynthError
from synth.generators.augment import NUM_OPS, random_augment
from synth.generators.base import Generator, GeneratorSettings, Sample, register
from synth.generators.draem import TextureAnomaly, blend, region, settings_textures
from synth.masks import check_rule, default_rule

PRN_BETA = (0.2, 0.8)
GRID = 8


def shuffle_grid(image: np.ndarray, grid: int, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """Cut the image into grid x grid equal tiles (as wide and as tall as the image's width and
    height allow) and put them back in a random order.

    Returns the image and the permutation (tile ``k`` of the output is tile ``order[k]`` of the
    input, row-major). When a side is not a multiple of ``grid`` the last rows/columns stay put.
    """
    tile_height, tile_width = image.shape[0] // grid, image.shape[1] // grid
    if min(tile_height, tile_width) == 0:
        raise SynthError(f"grid {grid} is finer than the {image.shape[0]}x{image.shape[1]} image")
    height, width = tile_height * grid, tile_width * grid
    order = rng.permutation(grid * grid)
    tiles = (image[:height, :width].reshape(grid, tile_height, grid, tile_width, -1).swapaxes(1, 2)
             .reshape(grid * grid, tile_height, tile_width, -1))
    out = image.copy()
    out[:height, :width] = (tiles[order].reshape(grid, grid, tile_height, tile_width, -1).swapaxes(1, 2)
                            .reshape(height, width, -1))
    return out, [int(k) for k in order]


def object_rule(settings: GeneratorSettings) -> str:
    """PRN restricts anomalies to the object: ``--foreground`` or the category's default rule."""
    return check_rule(settings.foreground) or default_rule(settings.category)


@register
class PrnHeterogeneous(TextureAnomaly):
    name = "prn-hea"
    beta_range = PRN_BETA

    @classmethod
    def from_settings(cls, settings: GeneratorSettings) -> "PrnHeterogeneous":
        return cls(settings_textures(settings), object_rule(settings))


@register
class PrnHomogeneous(Generator):
    name = "prn-hoa"
    columns = {"ops": "string", "beta": "float64", "permutation": "string"}

    def __init__(self, foreground: str, grid: int = GRID, num_ops: int = NUM_OPS):
        if grid < 1:
            raise SynthError(f"grid must be a positive number of tiles per side, got {grid}")
        self.foreground = check_rule(foreground)
        self.grid = grid
        self.num_ops = num_ops

    @classmethod
    def from_settings(cls, settings: GeneratorSettings) -> "PrnHomogeneous":
        grid = settings.extra.get("grid", GRID)
        try:
            grid = int(grid)
        except ValueError:
            raise SynthError(f"option grid must be an integer, got {grid!r}") from None
        if grid > min(settings.size.shape):
            raise SynthError(f"grid {grid} is finer than the {settings.size.height}x{settings.size.width} image")
        return cls(object_rule(settings), grid)

    def generate(self, normal: np.ndarray, rng: np.random.Generator) -> Sample:
        source, ops = random_augment(normal, rng, self.num_ops)
        source, order = shuffle_grid(source, self.grid, rng)
        mask = region(normal, self.foreground, rng)
        beta = float(rng.uniform(*PRN_BETA))
        params = {"ops": ops, "beta": beta, "permutation": ",".join(map(str, order))}
        return Sample(blend(normal, source, mask, beta), mask, params)

    def describe(self) -> dict[str, Any]:
        return {"foreground": self.foreground, "grid": self.grid, "num_ops": self.num_ops, "beta_range": list(PRN_BETA)}
