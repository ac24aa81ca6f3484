"""Reading and resizing images: always RGB uint8, HxWx3."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from synth.data.size import ImageSize, stretch_note
from synth.errors import SynthError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

log = logging.getLogger("synth")


@lru_cache(maxsize=None)
def warn_once(text: str) -> None:
    """Log ``text`` once per process (a category is read more than once per run)."""
    log.warning(text)


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name; an unreadable folder is a ``SynthError``."""
    if not folder.is_dir():
        return []
    try:
        return sorted(p for p in folder.iterdir() if is_image_file(p))
    except OSError as error:
        raise SynthError(f"cannot read folder {folder}: {error.strerror}") from None


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Grayscale, RGBA (composited on black) or 16-bit arrays -> RGB uint8 HxWx3."""
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.shape[2] == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        return (image[:, :, :3].astype(np.float32) * alpha + 0.5).astype(np.uint8)
    return image[:, :, :3]


def resize(image: np.ndarray, size: ImageSize, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """Resize to ``size`` (a mask should use ``cv2.INTER_NEAREST``)."""
    if image.shape[:2] == size.shape:
        return image
    if interpolation == cv2.INTER_AREA and (image.shape[0] < size.height or image.shape[1] < size.width):
        interpolation = cv2.INTER_LINEAR
    return cv2.resize(image, size.dsize, interpolation=interpolation)


@contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence what OpenCV and libpng print on the process's stderr while decoding (e.g. "libpng error:
    bad adaptive filter value" for a damaged PNG): synth reports an unreadable image itself, in one line."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def decode_bytes(data: bytes | np.ndarray, flag: int) -> np.ndarray | None:
    """The decoded image (OpenCV's BGR order), or None when ``data`` is empty or undecodable; silently."""
    buffer = np.frombuffer(data, np.uint8) if isinstance(data, bytes) else data
    if not buffer.size:
        return None
    with quiet_opencv():
        return cv2.imdecode(buffer, flag)


def decode_file(path: Path, flag: int) -> np.ndarray | None:
    """The decoded image file, or None when it is missing, unreadable (permissions), empty or undecodable."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8) if Path(path).is_file() else None
    except OSError:
        return None
    return None if data is None else decode_bytes(data, flag)


def read_rgb(path: Path, size: ImageSize | None = None) -> np.ndarray:
    """Read an image file as RGB uint8, optionally resized; raise ``SynthError`` if unreadable."""
    image = decode_file(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise SynthError(f"cannot read image {path}")
    if image.ndim == 3 and image.shape[2] == 4 and not image[:, :, 3].any():
        warn_once(f"{path} is fully transparent (alpha 0 everywhere): it reads as a black image")
    if image.ndim == 3 and image.shape[2] >= 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    image = to_rgb(image)
    return resize(image, size) if size else image


def read_mask(path: Path | None, size: ImageSize, image_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a ground-truth mask as HxW uint8 {0, 255}; an absent mask is all zeros. A pixel is a defect
    where the mask is above half its maximum, so 0/255, 0/1 and single-colour masks all read alike.
    With ``image_shape`` (its image's HxW before resizing), a mask of another size is an error."""
    if path is None:
        return np.zeros(size.shape, np.uint8)
    mask = decode_file(path, cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise SynthError(f"cannot read mask {path}")
    if image_shape is not None and mask.shape != tuple(image_shape):
        raise SynthError(f"mask {path} is {mask.shape[1]}x{mask.shape[0]} but its image is "
                         f"{image_shape[1]}x{image_shape[0]}")
    level = int(mask.max()) / 2
    mask = resize(mask, size, cv2.INTER_NEAREST)
    return np.where(mask > level, 255, 0).astype(np.uint8)


def read_pair(image_path: Path, mask_path: Path | None, size: ImageSize) -> tuple[np.ndarray, np.ndarray]:
    """An image and its mask (all zeros when None) at ``size``; a mask of another size is an error."""
    image = read_rgb(image_path)
    return resize(image, size), read_mask(mask_path, size, image_shape=image.shape[:2])


def read_many(paths: list[Path], size: ImageSize, what: str) -> tuple[list[np.ndarray], list[Path]]:
    """Read images at ``size``, skipping unreadable ones (one log line each, then a count); error if
    none are left. Images that resizing distorts a lot (``stretch_note``) get one line for the lot."""
    images, kept, stretched = [], [], []
    for path in paths:
        try:
            image = read_rgb(path)
        except SynthError as error:
            warn_once(f"skipping: {error}")
            continue
        note = stretch_note(image.shape[:2], size)
        if note:
            stretched.append(f"{path.name} {image.shape[0]}x{image.shape[1]}: {note}")
        images.append(resize(image, size))
        kept.append(path)
    if not images:
        raise SynthError(f"no readable images in {what}")
    if len(kept) < len(paths):
        warn_once(f"skipped {len(paths) - len(kept)} of {len(paths)} images in {what} (unreadable)")
    if stretched:
        warn_once(f"{len(stretched)} of {len(kept)} images in {what} are much distorted by resizing to {size} "
                  f"(e.g. {stretched[0]})")
    return images, kept
