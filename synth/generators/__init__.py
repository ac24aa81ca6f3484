"""Generators: every anomaly generator, found by name (modules are imported on first use)."""

from synth.generators.base import (Generator, GeneratorSettings, Sample, available_generators,
                                   create_generator, register)
from synth.pipeline.rng import per_sample_rng

__all__ = ["Generator", "GeneratorSettings", "Sample", "available_generators", "create_generator",
           "per_sample_rng", "register"]
