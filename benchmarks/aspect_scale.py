"""Does stretching images of mixed sizes to one square hold PatchCore back? One scale for all, aspect kept.

    python benchmarks/aspect_scale.py --data ../shared/data/mtd --category magnetic_tile [--scale 0.78] [--seeds 0]

MTD's magnetic tiles are 230-400 px high and 100-630 px wide; `--size 256` stretches each on its own,
so the texture's scale differs from tile to tile (up to 2.5x across, 0.4x along). Two PatchCores
(defaults, the project's `PatchCore`) are fitted on the same normal images:

- ``square``: every image resized to 256 x 256 (what `detectors fit --size 256` does);
- ``scaled``: every image resized by one factor (``--scale``), aspect ratio kept, each side rounded to a
  multiple of 16; features, memory bank and maps of each image at its own size.

Both are scored on the same pixels: each test image and mask at its ``scaled`` size (the square maps
resized back to it), pooled over images of different sizes with ``PixelScores(valid=...)``. Prints
image AUROC, pixel AUROC, AUPRO@0.3 and pixel AP per mode and seed, and the fit time. No choice is
made from the test set; it measures whether the stretch costs anything.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
import cv2
import numpy as np
import torch

if __name__ == "__main__":  # benchmarks/detectors.py would shadow the package: the repository root comes first
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from detectors.evaluation.metrics import PixelScores, image_auroc  # noqa: E402
from detectors.models.patchcore import PatchCore, PatchCoreConfig, select_coreset  # noqa: E402
from synth.data import ImageSize, load_category  # noqa: E402
from synth.data.images import read_mask, read_rgb, resize  # noqa: E402

SQUARE = ImageSize.square(256)
MULTIPLE = 16  # the coarser of PatchCore's default taps


def scaled_size(shape: tuple[int, ...], scale: float) -> ImageSize:
    """The image's size times ``scale``, each side rounded to a multiple of ``MULTIPLE``."""
    height, width = (max(MULTIPLE, round(side * scale / MULTIPLE) * MULTIPLE) for side in shape[:2])
    return ImageSize(height, width)


def fitted(images: list[np.ndarray], seed: int) -> PatchCore:
    """A default PatchCore fitted on images that may differ in size (embedded one at a time)."""
    model = PatchCore(PatchCoreConfig(seed=seed))
    features = torch.cat([model.embed(image[None]).reshape(-1, model.dim) for image in images])
    config = model.config
    coreset = select_coreset(features, max(1, int(len(features) * config.coreset_ratio)), config.coreset_method,
                             config.projection_dim, config.start_points, torch.Generator().manual_seed(seed))
    model.memory_bank, model.fitted = features[coreset.indices].contiguous(), True
    return model


def run(root: Path, category: str, mode: str, scale: float, seed: int) -> dict[str, float | str | int]:
    torch.manual_seed(seed)
    found = load_category(root, category, size=SQUARE)
    started = time.perf_counter()
    train = [read_rgb(root / image_id) for image_id in found.train_ids]
    model = fitted([resize(image, scaled_size(image.shape, scale) if mode == "scaled" else SQUARE) for image in train],
                   seed)
    fit_seconds = time.perf_counter() - started
    labels, scores, maps, masks = [], [], [], []
    for item in found.test:
        image = read_rgb(item.path)
        size = scaled_size(image.shape, scale)
        score, anomaly_map = model._score(resize(image, size if mode == "scaled" else SQUARE)[None])
        labels.append(item.label)
        scores.append(float(score[0]))
        maps.append(cv2.resize(anomaly_map[0].astype(np.float32), size.dsize, interpolation=cv2.INTER_LINEAR))
        masks.append(read_mask(item.mask_path if item.label else None, size, image.shape[:2]) > 0)
    stack = (len(maps), max(m.shape[0] for m in maps), max(m.shape[1] for m in maps))
    padded_maps, padded_masks, valid = np.zeros(stack, np.float32), np.zeros(stack, bool), np.zeros(stack, bool)
    for i, (anomaly_map, mask) in enumerate(zip(maps, masks)):
        rows, columns = anomaly_map.shape
        padded_maps[i, :rows, :columns], padded_masks[i, :rows, :columns] = anomaly_map, mask
        valid[i, :rows, :columns] = True
    pixels = PixelScores(padded_masks, padded_maps, valid=valid)
    return {"mode": mode, "seed": seed, "image_auroc": image_auroc(np.array(labels), np.array(scores)),
            "pixel_auroc": pixels.auroc(), "aupro": pixels.aupro(0.3), "pixel_ap": pixels.average_precision(),
            "fit_seconds": round(fit_seconds, 1)}


@click.command()
@click.option("--data", "root", type=click.Path(path_type=Path, exists=True), default=Path("../shared/data/mtd"))
@click.option("--category", default="magnetic_tile", show_default=True)
@click.option("--scale", type=click.FloatRange(0.05, 4), default=0.78, show_default=True,
              help="One factor for every image (0.78: MTD's median height, 327 px, to 256).")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated PatchCore seeds.")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True)
def main(root: Path, category: str, scale: float, seeds: str, threads: int) -> None:
    torch.set_num_threads(threads)
    for seed in (int(s) for s in seeds.split(",")):
        for mode in ("square", "scaled"):
            print(json.dumps(run(root, category, mode, scale, seed)), flush=True)


if __name__ == "__main__":
    main()
