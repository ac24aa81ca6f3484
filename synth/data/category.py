"""A category: its normal training images and its labelled test images."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synth.data.images import read_pair
from synth.data.size import ImageSize


@dataclass(frozen=True)
class TestItem:
    """A test image with its label (0 normal, 1 defective), defect type and mask file."""

    path: Path
    label: int
    defect: str
    mask_path: Path | None = None

    def load(self, size: ImageSize) -> tuple[np.ndarray, np.ndarray]:
        """The RGB image and its {0, 255} mask, both resized to ``size``."""
        return read_pair(self.path, self.mask_path if self.label else None, size)


@dataclass
class Category:
    """Normal training images (RGB uint8 at ``size``, loaded) and test items (loaded on demand)."""

    name: str
    size: ImageSize
    train_images: list[np.ndarray]
    train_ids: list[str]
    test: list[TestItem] = field(default_factory=list)
    layout: str = "folder"
    root: Path | None = None

    def __len__(self) -> int:
        return len(self.train_images)

    def pick(self, rng: np.random.Generator) -> int:
        """Index of a normal image drawn uniformly with ``rng``."""
        return int(rng.integers(len(self.train_images)))
