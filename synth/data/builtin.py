"""Embedded demo categories made from the texture photos inside scikit-image's wheel (no download)."""

from __future__ import annotations

import numpy as np

from synth.data.category import Category
from synth.data.images import resize, to_rgb
from synth.data.size import ImageSize

BUILTIN_CATEGORIES = ("brick", "grass", "gravel")
DEFAULT_CATEGORY = "brick"
CROP_FRACTION = 0.5  # each normal image is a crop, of the image size's aspect, whose longer side is half the photo's shorter side
NUM_IMAGES = 200
CROP_SEED = 20240601


def builtin_photo(name: str) -> np.ndarray:
    """The RGB uint8 photo behind a built-in category."""
    from skimage import data

    return to_rgb(getattr(data, name)())


def read_builtin(name: str, size: ImageSize, num_images: int = NUM_IMAGES) -> Category:
    """Random crops (fixed seed) of a scikit-image texture photo as the normal images of ``name``."""
    photo = builtin_photo(name)
    height, width = photo.shape[:2]
    side = int(min(height, width) * CROP_FRACTION)
    crop_height, crop_width = (round(side * s / max(size.shape)) for s in size.shape)
    rng = np.random.default_rng(CROP_SEED)
    images, ids = [], []
    for index in range(num_images):
        top, left = int(rng.integers(0, height - crop_height + 1)), int(rng.integers(0, width - crop_width + 1))
        images.append(resize(np.ascontiguousarray(photo[top:top + crop_height, left:left + crop_width]), size))
        ids.append(f"skimage:{name}/crop{index:04d}@{top},{left}")
    return Category(name, size, images, ids, [], "builtin", None)
