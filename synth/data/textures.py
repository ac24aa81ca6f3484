"""Texture sources for DRAEM and PRN-HEA: the DTD layout, any folder of images, or built-in photos.

``--textures ROOT`` accepts the official DTD layout (``dtd/images/<class>/*.jpg``; ROOT may be the
folder holding ``dtd``, ``dtd`` itself or ``dtd/images``) or any folder of images, searched
recursively; a texture's class is its first sub-folder. Without ``--textures`` the textures are
fixed random crops of the photos inside scikit-image's wheel. Textures are decoded on first use
and kept, resized, in a bounded cache.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from synth.data.builtin import read_builtin
from synth.data.images import is_image_file, read_rgb, resize
from synth.data.size import ImageSize
from synth.errors import SynthError

# skimage.data photos shipped inside the wheel (no download); their names act as classes
BUILTIN_PHOTOS = ("brick", "grass", "gravel", "coffee", "rocket", "chelsea", "astronaut", "coins",
                  "moon", "camera", "hubble_deep_field", "immunohistochemistry")
BUILTIN_CROPS = 16  # random crops (half the photo's side, fixed seed) per photo
CACHE_BYTES = 256 * 2**20

log = logging.getLogger("synth")


class TextureSource:
    """Textures by index: ``ids[i]`` is the id recorded in each row, ``image(i, size)`` the RGB
    texture resized to ``size`` (DRAEM resizes its texture to the image size)."""

    def __init__(self, description: str, ids: list[str], read: Callable[[int, ImageSize], np.ndarray],
                 cache_bytes: int = CACHE_BYTES):
        self.description = description
        self.ids = ids
        self._read = read
        self._cache: OrderedDict[tuple[int, ImageSize], np.ndarray] = OrderedDict()
        self._cache_bytes = cache_bytes
        self._cached = 0

    def __len__(self) -> int:
        return len(self.ids)

    def pick(self, rng: np.random.Generator) -> int:
        """Index of a texture drawn uniformly with ``rng``."""
        return int(rng.integers(len(self.ids)))

    def image(self, index: int, size: ImageSize) -> np.ndarray:
        """Texture ``index`` as RGB uint8 at ``size`` (read-only: copy before writing into it)."""
        key = (index, size)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        texture = self._read(index, size)
        texture.setflags(write=False)
        self._cache[key] = texture
        self._cached += texture.nbytes
        while self._cached > self._cache_bytes and len(self._cache) > 1:
            self._cached -= self._cache.popitem(last=False)[1].nbytes
        return texture


def _image_root(root: Path) -> Path:
    """The folder that holds the texture classes: ROOT/dtd/images, ROOT/images (DTD) or ROOT."""
    for candidate in (root / "dtd" / "images", root / "images"):
        if candidate.is_dir():
            return candidate
    return root


def _class_of(relative: Path) -> str:
    return relative.parts[0] if len(relative.parts) > 1 else ""


def _select(ids: list[str], classes: list[str], include: tuple[str, ...], exclude: tuple[str, ...],
            where: str) -> list[int]:
    """Indices of ``ids`` whose class is included and not excluded; bad class names are errors."""
    available = sorted(set(classes) - {""})
    unknown = sorted((set(include) | set(exclude)) - set(available))
    if unknown:
        raise SynthError(f"unknown texture class {', '.join(unknown)} in {where}; "
                         f"classes: {', '.join(available) or '(none: images are not in sub-folders)'}")
    keep = [i for i, c in enumerate(classes) if (not include or c in include) and c not in exclude]
    if not keep:
        raise SynthError(f"no textures left in {where} after --texture-classes/--exclude-texture-classes")
    return keep


def folder_textures(root: Path, include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> TextureSource:
    """Every image under ``root`` (DTD layout recognised), filtered by class."""
    if not root.is_dir():
        raise SynthError(f"texture folder {root} {'is not a folder' if root.exists() else 'does not exist'}")
    base = _image_root(root)
    paths = sorted(p for p in base.rglob("*")
                   if is_image_file(p) and not any(part.startswith(".") for part in p.relative_to(base).parts))
    if not paths:
        raise SynthError(f"no images in texture folder {root}")
    relative = [p.relative_to(base) for p in paths]
    keep = _select([r.as_posix() for r in relative], [_class_of(r) for r in relative], include, exclude, str(root))
    paths = [paths[i] for i in keep]
    return TextureSource(str(root), [relative[i].as_posix() for i in keep],
                         lambda index, size: read_rgb(paths[index], size))


def builtin_textures(include: tuple[str, ...] = (), exclude: tuple[str, ...] = (),
                     size: ImageSize = ImageSize.square(256)) -> TextureSource:
    """Fixed random crops of scikit-image's photos; the photo names are the classes."""
    keep = _select(list(BUILTIN_PHOTOS), list(BUILTIN_PHOTOS), include, exclude, "the built-in textures")
    crops = [read_builtin(BUILTIN_PHOTOS[i], size, BUILTIN_CROPS) for i in keep]
    images = [image for crop in crops for image in crop.train_images]
    ids = [id_ for crop in crops for id_ in crop.train_ids]
    return TextureSource("builtin:skimage", ids, lambda index, size: resize(images[index], size))


@lru_cache(maxsize=8)
def open_textures(root: Path | None, include: tuple[str, ...] = (), exclude: tuple[str, ...] = (),
                  size: ImageSize = ImageSize.square(256)) -> TextureSource:
    """The texture source for these settings, shared by every generator of the process (so a mix of
    DRAEM and PRN-HEA decodes each texture once). Without ``root``, the built-in textures, said once."""
    if root is not None:
        return folder_textures(Path(root), tuple(include), tuple(exclude))
    _say_builtin_once()
    return builtin_textures(tuple(include), tuple(exclude), size)


@lru_cache(maxsize=1)
def _say_builtin_once() -> None:
    log.warning("no --textures given: using built-in textures (crops of scikit-image's photos: %s); "
                "pass --textures ROOT (e.g. the DTD) for DRAEM/PRN's real anomaly sources", ", ".join(BUILTIN_PHOTOS))
