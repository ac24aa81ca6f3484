"""Image size: one value object (height, width), parsed once from ``--size`` ("256" or "256x512").

``--size 256`` means 256 x 256. Sides are bounded (``MIN_SIDE`` .. ``MAX_SIDE``): every category
is held in memory at this size, and larger images belong to a tiled detector, not to a bigger
``--size``. Inputs are stretched to the size; ``stretch_note`` says when that distorts them a lot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import click
import numpy as np

from synth.errors import SynthError

MIN_SIDE = 8
MAX_SIDE = 4096  # 4096 x 4096 RGB is 48 MiB per image; a category of a few hundred fills a large machine
MAX_ASPECT_CHANGE = 2.0  # a note when an input's width/height ratio changes by more than this factor
MAX_UPSCALE = 4.0  # ... or when one of its sides is enlarged more than this
_PATTERN = re.compile(r"\s*(\d+)\s*(?:[xX×]\s*(\d+)\s*)?")


@dataclass(frozen=True)
class ImageSize:
    """Height and width in pixels of every image a command reads, makes or scores."""

    height: int
    width: int

    def __post_init__(self) -> None:
        for side in (self.height, self.width):
            if not MIN_SIDE <= side <= MAX_SIDE:
                raise SynthError(f"image sides must be between {MIN_SIDE} and {MAX_SIDE} px, got {self}")

    @classmethod
    def square(cls, side: int) -> ImageSize:
        return cls(side, side)

    @classmethod
    def of(cls, image: np.ndarray) -> ImageSize:
        """The size of an HxW(xC) array."""
        return cls(int(image.shape[0]), int(image.shape[1]))

    @classmethod
    def coerce(cls, value: ImageSize | int | str) -> ImageSize:
        """An ImageSize from itself, a side (older configs and manifests) or the ``--size`` text."""
        if isinstance(value, ImageSize):
            return value
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return cls.square(int(value))
        return parse_size(str(value))

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ImageSize:
        """The size a manifest or config records: ``height`` and ``width``, or an older square ``size``."""
        if record.get("height") is not None and record.get("width") is not None:
            return cls(int(record["height"]), int(record["width"]))
        return cls.coerce(record["size"])

    @property
    def is_square(self) -> bool:
        return self.height == self.width

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width), numpy's order."""
        return self.height, self.width

    @property
    def dsize(self) -> tuple[int, int]:
        """(width, height), OpenCV's order for ``cv2.resize`` and ``cv2.warpAffine``."""
        return self.width, self.height

    def record(self) -> dict[str, Any]:
        """What manifests and configs store: ``size`` as before (the side when square) plus height and width."""
        return {"size": self.height if self.is_square else str(self), "height": self.height, "width": self.width}

    def __str__(self) -> str:
        return str(self.height) if self.is_square else f"{self.height}x{self.width}"


def parse_size(text: str) -> ImageSize:
    """``"256"`` -> 256 x 256, ``"256x512"`` -> height 256, width 512; anything else is a SynthError."""
    match = _PATTERN.fullmatch(text)
    if not match:
        raise SynthError(f"size must be SIDE or HEIGHTxWIDTH in pixels (e.g. 256 or 256x512), got {text!r}")
    height = int(match.group(1))
    return ImageSize(height, int(match.group(2)) if match.group(2) else height)


def stretch_note(source: tuple[int, int], size: ImageSize) -> str | None:
    """Why resizing an image of ``source`` (height, width) to ``size`` distorts it a lot, or None."""
    height, width = source
    aspect = (size.width / size.height) / (width / height)
    if max(aspect, 1 / aspect) > MAX_ASPECT_CHANGE:
        return f"aspect ratio changes {max(aspect, 1 / aspect):.1f}x"
    upscale = max(size.height / height, size.width / width)
    if upscale > MAX_UPSCALE:
        return f"enlarged {upscale:.1f}x"
    return None


class SizeParam(click.ParamType):
    """``--size``: a side or HEIGHTxWIDTH, at least ``min_side`` (a model's own minimum) per side."""

    name = "size"

    def __init__(self, min_side: int = MIN_SIDE) -> None:
        self.min_side = min_side

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> ImageSize:
        try:
            size = ImageSize.coerce(value)
        except SynthError as error:
            self.fail(str(error), param, ctx)
        if min(size.shape) < self.min_side:
            self.fail(f"image sides must be at least {self.min_side} px, got {size}", param, ctx)
        return size
