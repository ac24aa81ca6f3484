"""The ``normal`` generator: the untouched image and an empty mask (a mixture's normal component)."""

from __future__ import annotations

import numpy as np

from synth.generators.base import Generator, Sample, register


@register
class Normal(Generator):
    name = "normal"
    columns = {}

    def generate(self, normal: np.ndarray, rng: np.random.Generator) -> Sample:
        return Sample(normal.copy(), np.zeros(normal.shape[:2], np.uint8), {})
