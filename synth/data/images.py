"""Reading and resizing images: always RGB uint8, HxWx3."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np

from synth.errors import SynthError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if is_image_file(p))


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


def resize(image: np.ndarray, size: int, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """Resize to size x size (a mask should use ``cv2.INTER_NEAREST``)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    if interpolation == cv2.INTER_AREA and (image.shape[0] < size or image.shape[1] < size):
        interpolation = cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def read_rgb(path: Path, size: int | None = None) -> np.ndarray:
    """Read an image file as RGB uint8, optionally resized; raise ``SynthError`` if unreadable."""
    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).is_file() else None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data is not None and data.size else None
    if image is None:
        raise SynthError(f"cannot read image {path}")
    if image.ndim == 3 and image.shape[2] >= 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    image = to_rgb(image)
    return resize(image, size) if size else image


def read_mask(path: Path | None, size: int, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a ground-truth mask as HxW uint8 {0, 255}; an absent mask is all zeros."""
    if path is None:
        return np.zeros(shape or (size, size), np.uint8)
    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).is_file() else None
    mask = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data is not None and data.size else None
    if mask is None:
        raise SynthError(f"cannot read mask {path}")
    mask = resize(mask, size, cv2.INTER_NEAREST)
    return np.where(mask > 127, 255, 0).astype(np.uint8)


def read_many(paths: list[Path], size: int, what: str) -> tuple[list[np.ndarray], list[Path]]:
    """Read images, skipping unreadable ones with a warning; error if none are left."""
    images, kept = [], []
    for path in paths:
        try:
            images.append(read_rgb(path, size))
            kept.append(path)
        except SynthError as error:
            warnings.warn(f"skipping {error}", stacklevel=2)
    if not images:
        raise SynthError(f"no readable images in {what}")
    return images, kept
