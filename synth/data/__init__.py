"""Data: categories of normal (and test) images from the supported layouts or the embedded photos."""

from __future__ import annotations

from pathlib import Path

from synth.data.builtin import BUILTIN_CATEGORIES, DEFAULT_CATEGORY, read_builtin
from synth.data.category import Category, TestItem
from synth.data.layouts import LAYOUTS, READERS, detect_layout
from synth.data.size import ImageSize
from synth.errors import SynthError

__all__ = ["BUILTIN_CATEGORIES", "DEFAULT_CATEGORY", "LAYOUTS", "Category", "ImageSize", "TestItem", "load_category"]


def load_category(root: str | Path | None, category: str, layout: str | None = None,
                  size: ImageSize | int = 256, needs_images: bool = True) -> Category:
    """Load ``category`` from ``root`` (layout detected unless given), or a built-in one if root is None.

    With ``needs_images=False`` (a generator that ignores the normal image, as raw SDAS) and no root,
    a category that is not built in is returned empty instead of refused. ``size`` may be a side (square).
    """
    size = ImageSize.coerce(size)
    if root is None and not needs_images and category not in BUILTIN_CATEGORIES:
        return Category(category, size, [], [], layout="none")
    if root is None:
        if category not in BUILTIN_CATEGORIES:
            raise SynthError(f"unknown category {category!r} without --data; built-in categories: "
                             f"{', '.join(BUILTIN_CATEGORIES)}")
        return read_builtin(category, size)
    root = Path(root)
    if not root.is_dir():
        raise SynthError(f"data directory {root} does not exist")
    if not any(root.iterdir()):
        raise SynthError(f"data directory {root} is empty")
    if layout is not None and layout not in READERS:
        raise SynthError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    layout = layout or detect_layout(root, category)
    try:
        return READERS[layout](root, category, size)
    except (FileNotFoundError, KeyError) as error:
        raise SynthError(f"{root} does not look like a {layout} dataset ({error})") from None
