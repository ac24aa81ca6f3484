"""The detector interface, its registry by name, and saving/loading fitted detectors.

A fitted detector on disk is a directory with ``config.json`` (detector name + its config) and
``model.safetensors`` (every tensor the detector needs to score: memory bank, network weights).
"""

from __future__ import annotations

import dataclasses
import json
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import numpy as np
import torch
from annotated_types import Ge, Gt, Le, Lt
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from detectors.data.tiling import Tiler
from detectors.data.training import TrainingSet
from synth.backbones import DEFAULT_BACKBONE
from synth.data.size import ImageSize
from synth.diffusion.precision import fast_bf16
from synth.errors import SynthError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

# Config field types whose bounds `typed_settings` checks, so that a bad --set value fails before a fit.
AtLeastOne = Annotated[int, Ge(1)]
NonNegativeInt = Annotated[int, Ge(0)]
NonNegativeFloat = Annotated[float, Ge(0)]
Share = Annotated[float, Ge(0), Lt(1)]  # a fraction in [0, 1)
Ratio = Annotated[float, Gt(0), Le(1)]  # a fraction in (0, 1]


@dataclasses.dataclass
class DetectorConfig:
    """Settings every detector has; each detector extends it with its own fields."""

    backbone: str = DEFAULT_BACKBONE
    backbone_weights: str | None = None  # a weights file for torchvision backbones (--weights)
    batch_size: AtLeastOne = 8
    seed: int = 0
    size: int | None = None  # side of square training images (configs before height/width hold only this)
    height: int | None = None  # training image height and width (recorded by the CLI/bench for eval)
    width: int | None = None
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # backbone and training; auto: bf16 where the CPU has it
    tile: tuple[AtLeastOne, AtLeastOne] | None = None  # fit and score on (height, width) tiles (detectors.data.tiling)
    tile_stride: tuple[AtLeastOne, AtLeastOne] | None = None  # between tiles; None: half the tile (overlaps averaged)

    def image_size(self) -> ImageSize | None:
        """The training image size, None when no fit recorded one."""
        if self.height and self.width:
            return ImageSize(self.height, self.width)
        return ImageSize.square(self.size) if self.size else None

    def record_size(self, size: ImageSize) -> None:
        """Record the training image size (``size`` too when square, for readers of older configs)."""
        self.size = size.height if size.is_square else None
        self.height, self.width = size.shape

    def tiler(self) -> Tiler | None:
        """The tiler that cuts images into this detector's input, None when it sees whole images."""
        if self.tile is None:
            return None
        stride = self.tile_stride or (max(1, self.tile[0] // 2), max(1, self.tile[1] // 2))
        return Tiler(tuple(self.tile), tuple(stride))

    def use_bf16(self) -> bool:
        """Whether the backbone and the training forward passes run under bf16 autocast."""
        return self.precision == "bf16" or (self.precision == "auto" and fast_bf16("cpu"))


def require_anomalies(name: str, data: TrainingSet) -> None:
    """SynthError unless ``data`` holds synthetic anomalies (detector ``name`` learns from them)."""
    if not data.anomalous:
        raise SynthError(f"{name} learns from synthetic anomalies; pass at least one synth dataset (--anomalies DIR)")


class Detector(ABC):
    """fit(train data) once, then score(images) -> (image scores (N,), anomaly maps (N, H, W))."""

    name: ClassVar[str]
    config_class: ClassVar[type[DetectorConfig]] = DetectorConfig
    uses_anomalies: ClassVar[bool] = False  # whether fit() learns from TrainingSet.anomalous
    size_multiple: ClassVar[int] = 1  # the sides of the images it sees (whole or tiles) are multiples of this
    min_normal_images: ClassVar[int] = 1

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or self.config_class()
        self.fitted = False
        self.training: dict[str, Any] | None = None  # what fit() did (steps, early stopping), if it validates

    @classmethod
    def paper_config(cls, **overrides: Any) -> DetectorConfig:
        """The paper's / reference code's settings (the default config unless a detector scales them down)."""
        return cls.config_class(**overrides)

    @abstractmethod
    def fit(self, data: TrainingSet) -> None:
        """Learn from the training set (normal images, plus anomalous ones if ``uses_anomalies``); set ``fitted``."""

    @abstractmethod
    def _score(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores of one batch of RGB uint8 images (B, H, W, 3)."""

    @abstractmethod
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor needed to score after loading."""

    @abstractmethod
    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what ``state_tensors`` returned."""

    def check_size(self, size: ImageSize) -> None:
        """SynthError unless both sides of ``size`` (the images or tiles it sees) are multiples of ``size_multiple``."""
        if size.height % self.size_multiple or size.width % self.size_multiple:
            raise SynthError(f"{self.name} needs image sides that are multiples of {self.size_multiple}, got {size}")

    def check_training_data(self, data: TrainingSet) -> None:
        """SynthError for training data this detector cannot fit on (image or tile sides, tiles that do not
        fit, missing anomalies, too few normal images), so that a bench of several detectors fails before
        fitting the first."""
        tiler = self.config.tiler()
        if tiler:
            tiler.origins(*data.size.shape)  # a tile larger than the images is an error
        self.check_size(ImageSize(*tiler.tile) if tiler else data.size)
        if self.uses_anomalies:
            require_anomalies(self.name, data)
        if len(data.normal) < self.min_normal_images:
            raise SynthError(f"{self.name} needs at least {self.min_normal_images} normal training images, "
                             f"got {len(data.normal)}")

    def score(self, images: np.ndarray | list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Image scores (N,) float64 and anomaly maps (N, H, W) float32 for RGB uint8 images (N, H, W, 3)."""
        if not self.fitted:
            raise SynthError(f"{self.name} is not fitted; call fit() or load a fitted model first")
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise SynthError(f"expected RGB uint8 images (N, H, W, 3), got {images.dtype} {images.shape}")
        tiler = self.config.tiler()
        return tiler.score(self._score_batches, images) if tiler else self._score_batches(images)

    def _score_batches(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores, maps = [], []
        with torch.no_grad():
            for start in range(0, len(images), self.config.batch_size):
                batch_scores, batch_maps = self._score(images[start:start + self.config.batch_size])
                scores.append(batch_scores)
                maps.append(batch_maps)
        return np.concatenate(scores).astype(np.float64), np.concatenate(maps).astype(np.float32)

    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Write config.json and model.safetensors into ``directory``."""
        if not self.fitted:
            raise SynthError(f"{self.name} is not fitted; nothing to save")
        directory = Path(directory)
        if (directory / CONFIG_FILE).exists() and not overwrite:
            raise SynthError(f"{directory} already holds a model; pass --overwrite to replace it")
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {key: value.detach().contiguous().cpu() for key, value in self.state_tensors().items()}
        save_file(tensors, str(directory / WEIGHTS_FILE))
        document = {"detector": self.name, "config": dataclasses.asdict(self.config), "training": self.training}
        (directory / CONFIG_FILE).write_text(json.dumps(document, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "Detector":
        """A fitted detector from a directory written by ``save`` (of this class or, on Detector, any)."""
        directory = Path(directory)
        try:
            document = json.loads((directory / CONFIG_FILE).read_text())
            name, settings = document["detector"], document["config"]
        except (OSError, ValueError, KeyError, TypeError):
            raise SynthError(f"{directory} is not a saved detector (no readable {CONFIG_FILE})") from None
        detector_class = get_detector_class(name)
        if cls is not Detector and detector_class is not cls:
            raise SynthError(f"{directory} holds a {name} model, not {cls.name}")
        detector = detector_class(make_config(detector_class, settings))
        weights = directory / WEIGHTS_FILE
        if not weights.is_file():
            raise SynthError(f"{directory} has no {WEIGHTS_FILE}")
        try:
            detector.load_state_tensors(load_file(str(weights)))
        except (SafetensorError, OSError, ValueError) as error:
            raise SynthError(f"{weights} is not a readable safetensors file ({_first_line(error)})") from None
        except (KeyError, RuntimeError) as error:
            raise SynthError(f"{weights} does not hold a fitted {name} ({_first_line(error)})") from None
        detector.training = document.get("training")
        detector.fitted = True
        return detector


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


D = TypeVar("D", bound=type[Detector])
DETECTORS: dict[str, type[Detector]] = {}


def register(detector_class: D) -> D:
    """Class decorator: make a detector available by its ``name``."""
    DETECTORS[detector_class.name] = detector_class
    return detector_class


def get_detector_class(name: str) -> type[Detector]:
    if name not in DETECTORS:
        raise SynthError(f"unknown detector {name!r}; choose from {', '.join(sorted(DETECTORS))}")
    return DETECTORS[name]


def make_config(detector_class: type[Detector], settings: dict[str, Any], paper: bool = False) -> DetectorConfig:
    """The detector's config (paper settings if ``paper``) with ``settings`` applied; unknown keys are errors."""
    fields = {field.name: field for field in dataclasses.fields(detector_class.config_class)}
    unknown = sorted(set(settings) - set(fields))
    if unknown:
        raise SynthError(f"{detector_class.name} has no setting {unknown[0]!r}; settings: {', '.join(fields)}")
    settings = typed_settings(detector_class, settings)
    return detector_class.paper_config(**settings) if paper else detector_class.config_class(**settings)


def typed_settings(detector_class: type[Detector], settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` converted to the types of the config's fields (lists to tuples, ints to floats) by
    pydantic; a value that does not fit (``coreset_ratio=abc``, ``lr=nan``) is an error."""
    from pydantic import TypeAdapter, ValidationError

    try:
        config = TypeAdapter(detector_class.config_class).validate_python(settings)
    except ValidationError as error:
        problem = error.errors()[0]
        key = str(problem["loc"][0])
        raise SynthError(f"{detector_class.name} setting {key}={settings.get(key)!r}: {problem['msg']}") from None
    typed = {key: getattr(config, key) for key in settings}
    for key, value in typed.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise SynthError(f"{detector_class.name} setting {key}={settings[key]!r}: not a finite number")
    return typed


def create_detector(name: str, paper: bool = False, **settings: Any) -> Detector:
    """A new, unfitted detector by name, with its default (or paper) config and ``settings`` applied."""
    detector_class = get_detector_class(name)
    return detector_class(make_config(detector_class, settings, paper))


def load_detector(directory: str | Path) -> Detector:
    """A fitted detector of any registered kind from ``directory``."""
    return Detector.load(directory)
