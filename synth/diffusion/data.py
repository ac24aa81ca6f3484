"""Normal training images of one or several categories as tensors, with checks on their number and size."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from synth.data import BUILTIN_CATEGORIES, load_category
from synth.data.category import Category
from synth.data.size import ImageSize
from synth.errors import SynthError

MIN_IMAGES = 2


@dataclass
class TrainingSet:
    """uint8 images [N, 3, H, W], class labels [N] (index into class_names)."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def resolve_categories(spec: str, root: Path | None) -> list[str]:
    """``a,b,c`` -> [a, b, c]; ``all`` -> the built-in categories or every sub-folder of ``root``."""
    if spec.strip() != "all":
        names = [name.strip() for name in spec.split(",") if name.strip()]
        if not names:
            raise SynthError("--category is empty")
        if len(set(names)) != len(names):
            raise SynthError(f"--category lists a category twice: {spec}")
        return names
    if root is None:
        return list(BUILTIN_CATEGORIES)
    names = sorted(p.name for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith((".", "split_csv")))
    if not names:
        raise SynthError(f"--category all: no category folders in {root}")
    return names


def _check_source_sizes(category: Category, side: int) -> None:
    """SynthError if a source image file has a side under ``side`` (header read only, via Pillow)."""
    if category.root is None:
        return  # built-in crops are at least 256 pixels
    from PIL import Image

    for image_id in category.train_ids:
        path = Path(category.root) / image_id
        if path.is_file():
            with Image.open(path) as image:
                width, height = image.size
            if min(height, width) < side:
                raise SynthError(f"{path} is {width}x{height}, smaller than the preset's {side}x{side}; "
                                 "choose a smaller preset")


def load_training_set(root: Path | None, categories: list[str], size: ImageSize | int,
                      layout: str | None = None, crop: int | None = None) -> TrainingSet:
    """Load the normal training images of ``categories`` at ``size`` (a side: square). With ``crop`` (the
    side of the training crops cut from them) a source only needs that side: it is resized to ``size``
    as the detectors resize to theirs; without, every source needs ``size``."""
    size = ImageSize.coerce(size)
    images, labels = [], []
    for label, name in enumerate(categories):
        category = load_category(root, name, layout=layout, size=size)
        if len(category) < MIN_IMAGES:
            raise SynthError(f"category {name!r} has {len(category)} training image(s); "
                             f"need at least {MIN_IMAGES}")
        _check_source_sizes(category, crop or min(size.shape))
        images.extend(category.train_images)
        labels.extend([label] * len(category))
    stacked = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return TrainingSet(stacked, torch.tensor(labels, dtype=torch.long), list(categories))
