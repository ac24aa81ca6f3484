"""Generators: every anomaly generator, registered by name on import."""

from synth.generators import cutpaste  # noqa: F401
from synth.generators.base import (Generator, GeneratorSettings, Sample, available_generators,
                                   create_generator, per_sample_rng, register)

__all__ = ["Generator", "GeneratorSettings", "Sample", "available_generators", "create_generator",
           "per_sample_rng", "register"]
