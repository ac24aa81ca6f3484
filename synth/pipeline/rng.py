"""The per-sample random generator shared by generators and the diffusion sampler."""

from __future__ import annotations

import numpy as np


def per_sample_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of sample ``index``: a function of (seed, index) alone."""
    return np.random.default_rng(np.random.SeedSequence([seed, index]))
