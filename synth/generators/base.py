"""The generator interface and its registry (the per-sample rng is ``synth.pipeline.rng``)."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from synth.data.size import ImageSize
from synth.errors import SynthError
from synth.pipeline.strength import parse_range


TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass
class Sample:
    """One synthetic sample: an RGB uint8 image, its HxW uint8 mask {0, 255} and its random parameters."""

    image: np.ndarray
    mask: np.ndarray | None  # None: no pixel mask (raw SDAS images)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class GeneratorSettings:
    """Everything a generator may need beyond the image: chosen on the command line or by a recipe."""

    category: str = ""
    size: ImageSize = ImageSize.square(256)
    data: Path | None = None  # the category's data root (None: built-in), for generators that need its other images
    layout: str | None = None
    foreground: str | None = None  # a foreground rule name, None = the category's default rule
    textures: Path | None = None
    texture_classes: tuple[str, ...] = ()
    exclude_texture_classes: tuple[str, ...] = ()
    strength: tuple[float, float] | None = None  # SDAS strength range s (lo, hi); lo == hi for a fixed s
    mix: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # generator-specific options (e.g. model path)

    def __post_init__(self) -> None:
        self.size = ImageSize.coerce(self.size)

    def flag(self, key: str, default: bool = False) -> bool:
        """A boolean generator option (``-o KEY=true``, or a CLI flag stored in ``extra``)."""
        value = self.extra.get(key, default)
        if isinstance(value, bool):
            return value
        if str(value).lower() in TRUE_WORDS + FALSE_WORDS:
            return str(value).lower() in TRUE_WORDS
        raise SynthError(f"option {key} must be true or false, got {value!r}")

    def number_range(self, key: str, default: tuple[float, float], upper: float | None = None) -> tuple[float, float]:
        """A value-or-range generator option (``-o KEY=0.5`` or ``-o KEY=0.2:0.8``), 0 <= lo <= hi."""
        return parse_range(self.extra[key], f"option {key}", upper) if key in self.extra else default

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        """A generator option that takes one of ``choices``."""
        value = str(self.extra.get(key, default))
        if value not in choices:
            raise SynthError(f"option {key} must be one of {', '.join(choices)}, got {value!r}")
        return value


class Generator(ABC):
    """Turns a normal image into an anomalous one with a pixel mask.

    A generator is a pure function of (normal image, rng) and its settings: every random choice
    comes from ``rng`` and lands in ``Sample.params``. ``columns`` declares the parameter columns
    (name -> pyarrow type name) so that every shard has the same schema.
    """

    name: ClassVar[str]
    columns: ClassVar[dict[str, str]] = {}

    @classmethod
    def from_settings(cls, settings: GeneratorSettings) -> "Generator":
        return cls()

    @abstractmethod
    def generate(self, normal: np.ndarray | None, rng: np.random.Generator) -> Sample:
        """Make one sample from an HxWx3 uint8 RGB image (None for a generator that ignores it)."""

    def generate_batch(self, normals: list[np.ndarray | None], rngs: list[np.random.Generator]) -> list[Sample]:
        """Make several samples; generators that batch on a device (SDAS) override this."""
        return [self.generate(image, rng) for image, rng in zip(normals, rngs)]

    def describe(self) -> dict[str, Any]:
        """The generator's fixed parameters, for the manifest and the dataset card."""
        return {}

    @property
    def uses_normal_image(self) -> bool:
        """False for generators whose output does not derive from the normal image (raw SDAS)."""
        return True


_REGISTRY: dict[str, type[Generator]] = {}

# Where each built-in generator lives; its module is imported on first use so that light generators
# do not pay for heavy imports (torch and diffusers for SDAS).
BUILTIN_MODULES: dict[str, str] = {
    **{name: "synth.generators.cutpaste" for name in ("cutpaste", "cutpaste-scar", "cutpaste-union", "cutpaste-3way")},
    "draem": "synth.generators.draem",
    "prn-hea": "synth.generators.prn",
    "prn-hoa": "synth.generators.prn",
    "normal": "synth.generators.normal",
    "nsa": "synth.generators.nsa",
    "strokes": "synth.generators.strokes",
    "simplex": "synth.generators.simplex",
    "smooth-intensity": "synth.generators.intensity",
    "mix": "synth.generators.mix",
    "sdas": "synth.generators.sdas",
}


def register(cls: type[Generator]) -> type[Generator]:
    """Class decorator: make a generator available by its ``name``."""
    _REGISTRY[cls.name] = cls
    return cls


def available_generators() -> list[str]:
    return sorted(set(_REGISTRY) | set(BUILTIN_MODULES))


def generator_class(name: str) -> type[Generator]:
    if name not in _REGISTRY and name in BUILTIN_MODULES:
        importlib.import_module(BUILTIN_MODULES[name])
    if name not in _REGISTRY:
        raise SynthError(f"unknown generator {name!r}; choose from {', '.join(available_generators())}")
    return _REGISTRY[name]


def create_generator(name: str, settings: GeneratorSettings | None = None) -> Generator:
    """Build the generator registered under ``name``."""
    return generator_class(name).from_settings(settings or GeneratorSettings())


