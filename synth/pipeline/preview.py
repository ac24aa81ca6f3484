"""Contact sheets: normal images above their anomalous versions, mask outlines drawn in red."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from synth.data import ImageSize, load_category
from synth.errors import SynthError
from synth.generators import GeneratorSettings, Sample, per_sample_rng
from synth.pipeline.plan import checked_generator

OUTLINE = (255, 0, 0)
GAP = 4


def outline(image: np.ndarray, mask: np.ndarray | None, thickness: int = 1) -> np.ndarray:
    """A copy of ``image`` with the contour of ``mask`` drawn in red."""
    out = image.copy()
    if mask is not None and mask.any():
        contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, OUTLINE, thickness)
    return out


def grid(rows: list[list[np.ndarray]], tile: int) -> np.ndarray:
    """Tiles (RGB, ``tile`` px high and as wide as the images' aspect ratio) on a white sheet, row by row."""
    first = rows[0][0]
    tile_width = max(1, round(tile * first.shape[1] / first.shape[0]))
    height = len(rows) * tile + (len(rows) + 1) * GAP
    width = max(len(r) for r in rows) * tile_width + (max(len(r) for r in rows) + 1) * GAP
    sheet = np.full((height, width, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            y, x = GAP + r * (tile + GAP), GAP + c * (tile_width + GAP)
            sheet[y:y + tile, x:x + tile_width] = cv2.resize(image, (tile_width, tile), interpolation=cv2.INTER_AREA)
    return sheet


def contact_sheet(normals: list[np.ndarray], samples: list[Sample], tile: int = 128) -> np.ndarray:
    """Top row: the normal images; middle: the samples; bottom: the samples with mask outlines."""
    return grid([normals, [s.image for s in samples], [outline(s.image, s.mask) for s in samples]], tile)


def preview(generator: str, settings: GeneratorSettings, data: Path | None, category: str,
            layout: str | None, size: ImageSize, count: int, seed: int, tile: int = 128) -> np.ndarray:
    """Make ``count`` samples exactly as `synth gen` would (same seed, same indices) and lay them out."""
    if count <= 0:
        raise SynthError(f"-n must be positive, got {count}")
    settings.category, settings.size, settings.data, settings.layout = category, size, data, layout
    made = checked_generator(generator, settings)
    rngs = [per_sample_rng(seed, i) for i in range(count)]
    if not made.uses_normal_image:  # raw SDAS: just the images, 8 to a row
        images = [sample.image for sample in made.generate_batch([None] * count, rngs)]
        return grid([images[start:start + 8] for start in range(0, count, 8)], tile)
    source = load_category(data, category, layout, size)
    normals = [source.train_images[source.pick(rng)] for rng in rngs]
    return contact_sheet(normals, made.generate_batch(normals, rngs), tile)


def strength_sweep(settings: GeneratorSettings, data: Path | None, category: str, layout: str | None,
                   size: ImageSize, strengths: list[float], count: int, seed: int, tile: int = 128) -> np.ndarray:
    """SDAS at several strengths from the same seeds: one row per sample, one column per s
    (RealNet's Fig. 3a). Sample i uses the same noise at every s, so only the strength differs."""
    if count <= 0:
        raise SynthError(f"-n must be positive, got {count}")
    settings.category, settings.size = category, size
    columns = []
    for s in strengths:
        settings.strength = (s, s)
        made = checked_generator("sdas", settings)
        source = load_category(data, category, layout, size, made.uses_normal_image)
        rngs = [per_sample_rng(seed, i) for i in range(count)]
        normals = [source.train_images[source.pick(rng)] if made.uses_normal_image else None for rng in rngs]
        columns.append([outline(x.image, x.mask) for x in made.generate_batch(normals, rngs)])
    return grid([list(row) for row in zip(*columns)], tile)


def save_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        written = cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    except cv2.error:
        written = False
    if not written:
        raise SynthError(f"cannot write {path}")
