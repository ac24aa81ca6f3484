"""The ``mix`` generator: each sample comes from one of several generators, drawn with given weights.

``--mix normal=0.5,draem=0.25,cutpaste-scar=0.25`` (weights are normalised). The row's ``component``
column names the generator that made it; the other columns are the union of the components'
columns, empty where a component has no such parameter.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from synth.errors import SynthError
from synth.generators.base import Generator, GeneratorSettings, Sample, create_generator, register

COMPONENT = "component"


def mixture_weights(mix: dict[str, float]) -> dict[str, float]:
    """Validated, normalised weights; a bad spec raises ``SynthError``."""
    if not mix:
        raise SynthError("generator mix needs --mix NAME=WEIGHT,..., e.g. --mix normal=0.5,draem=0.5")
    for name, weight in mix.items():
        if name == Mix.name:
            raise SynthError("a mix cannot contain the mix generator")
        if not math.isfinite(weight) or weight < 0:
            raise SynthError(f"mix weight of {name!r} must be a finite number >= 0, got {weight}")
    total = sum(mix.values())
    if total <= 0:
        raise SynthError("mix weights sum to zero")
    return {name: weight / total for name, weight in mix.items()}


def union_columns(components: dict[str, Generator]) -> dict[str, str]:
    """``component`` plus every component's parameter columns; one name must keep one type."""
    columns = {COMPONENT: "string"}
    for name, generator in components.items():
        for column, kind in generator.columns.items():
            if columns.setdefault(column, kind) != kind:
                raise SynthError(f"column {column!r} of {name} is {kind}, but {columns[column]} in another component")
    return columns


@register
class Mix(Generator):
    name = "mix"

    def __init__(self, components: dict[str, Generator], weights: dict[str, float]):
        self.components = components
        self.names = list(components)
        self.weights = np.array([weights[n] for n in self.names])
        self.columns = union_columns(components)  # per instance: depends on the components

    @classmethod
    def from_settings(cls, settings: GeneratorSettings) -> "Mix":
        weights = mixture_weights(settings.mix)
        return cls({name: create_generator(name, settings) for name in weights}, weights)

    def generate(self, normal: np.ndarray, rng: np.random.Generator) -> Sample:
        return self.generate_batch([normal], [rng])[0]

    def generate_batch(self, normals: list[np.ndarray], rngs: list[np.random.Generator]) -> list[Sample]:
        """Draw each sample's component from its own rng, then let each component make its samples
        together (a batched component such as SDAS keeps its batching)."""
        picks = [int(rng.choice(len(self.names), p=self.weights)) for rng in rngs]
        samples: list[Sample | None] = [None] * len(normals)
        for k, name in enumerate(self.names):
            chosen = [i for i, pick in enumerate(picks) if pick == k]
            if not chosen:
                continue
            made = self.components[name].generate_batch([normals[i] for i in chosen], [rngs[i] for i in chosen])
            for i, sample in zip(chosen, made):
                params = dict.fromkeys(self.columns)
                params.update(sample.params, **{COMPONENT: name})
                samples[i] = Sample(sample.image, sample.mask, params)
        return samples  # type: ignore[return-value]

    @property
    def uses_normal_image(self) -> bool:
        return any(generator.uses_normal_image for generator in self.components.values())

    def describe(self) -> dict[str, Any]:
        return {"weights": dict(zip(self.names, self.weights.tolist())),
                "components": {name: generator.describe() for name, generator in self.components.items()}}
