"""Overlapping tiles for images larger than a detector's input, with maps stitched back.

Modelled on anomalib's ``Tiler`` (tile size, stride, overlaps averaged when the tiles are put
back): a large image is cut into ``tile``-sized windows every ``stride`` pixels, each window is
scored as an image of its own, and the tile maps are averaged where windows overlap. One
departure: where the stride does not divide the image, anomalib pads (or resizes) the image; here
the last window of a row or column is moved to end flush with the border, so every tile holds only
real pixels and every pixel is covered. The image score is the highest tile score.

Training on tiles: every tile of a normal image is a normal sample; of a synthetic anomaly, only
the tiles its mask touches are kept as anomalies (the rest are normal pixels with an empty mask
and would dilute the anomaly share of each batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from detectors.data.training import TrainingSet
from synth.errors import SynthError

Pair = tuple[int, int]  # (height, width)


def window_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets of windows of ``tile`` pixels every ``stride`` pixels; the last one ends at ``length``."""
    if tile > length:
        raise SynthError(f"a tile of {tile} px does not fit in an image side of {length} px")
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


@dataclass(frozen=True)
class Tiler:
    """Cuts (N, H, W, ...) arrays into (N·T, th, tw, ...) tiles and averages (N·T, th, tw) maps back."""

    tile: Pair
    stride: Pair

    def __post_init__(self) -> None:
        if min(*self.tile, *self.stride) < 1:
            raise SynthError(f"tile {self.tile} and stride {self.stride} must be positive")
        if self.stride[0] > self.tile[0] or self.stride[1] > self.tile[1]:
            raise SynthError(f"a stride of {self.stride[0]}x{self.stride[1]} would leave gaps between "
                             f"{self.tile[0]}x{self.tile[1]} tiles")

    def origins(self, height: int, width: int) -> list[Pair]:
        """Top-left corners of the tiles of an image, row by row."""
        return [(top, left) for top in window_starts(height, self.tile[0], self.stride[0])
                for left in window_starts(width, self.tile[1], self.stride[1])]

    def split(self, images: np.ndarray) -> np.ndarray:
        """Tiles of every image, image by image: (N, H, W, ...) -> (N·T, th, tw, ...)."""
        (th, tw), origins = self.tile, self.origins(*images.shape[1:3])
        return np.stack([image[top:top + th, left:left + tw] for image in images for top, left in origins])

    def merge(self, tiles: np.ndarray, height: int, width: int) -> np.ndarray:
        """(N·T, th, tw) tile maps -> (N, H, W) maps, each pixel the mean of the tiles covering it."""
        (th, tw), origins = self.tile, self.origins(height, width)
        count = np.zeros((height, width), np.float32)
        for top, left in origins:
            count[top:top + th, left:left + tw] += 1
        maps = np.zeros((len(tiles) // len(origins), height, width), np.float32)
        for index, tile in enumerate(tiles):
            top, left = origins[index % len(origins)]
            maps[index // len(origins), top:top + th, left:left + tw] += tile
        return maps / count

    def score(self, score_tiles: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
              images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score (N, H, W, 3) images tile by tile: the highest tile score per image and the stitched maps."""
        scores, maps = score_tiles(self.split(images))
        per_image = len(self.origins(*images.shape[1:3]))
        return scores.reshape(len(images), per_image).max(axis=1), self.merge(maps, *images.shape[1:3])

    def training_set(self, data: TrainingSet) -> TrainingSet:
        """``data`` cut into tiles: all tiles of the normal images, the tiles that hold anomalous pixels."""
        normal = list(self.split(np.stack(data.normal)))
        anomalous = []
        for image, mask in data.anomalous:
            tiles = zip(self.split(image[None]), self.split(mask[None]))
            anomalous += [(tile, tile_mask) for tile, tile_mask in tiles if tile_mask.any()]
        if data.anomalous and not anomalous:
            raise SynthError("no tile holds an anomalous pixel of the synthetic anomalies")
        return TrainingSet(normal, anomalous, data.anomaly_fraction if anomalous else 0.0)
