"""Thin defects and feature resolution: how far a thin stroke moves the frozen backbone's features, per tap and size.

No test defects are used. A few normal training images get a dark stroke from synth's ``strokes``
generator (fixed ``width`` in native pixels, i.e. drawn on the image as stored, and fixed ``contrast``
in local standard deviations); the normal image and its anomalous twin are then squashed to each input
side as the detectors' loader does (``synth.data.images.resize``). The stroke's pixels at that size are
those the resize left changed by at least one grey level (the generator's own mask rule).

For every backbone tap (strides 4, 8, 16, 32) and PatchCore's aggregated feature (its default taps,
3x3 neighbourhood, embedding width; the full memory bank, no coreset), a feature cell's distance is
its Euclidean distance to the nearest normal feature of the *other* images (leave one image out). Per
image, the ratio is the median distance over the cells the stroke touches (their block of the image
holds a changed pixel) divided by the median over ``--reference-cells`` random normal cells of that
image (medians both, so a stroke that changes nothing gives about 1); "detected" is the share of
stroke cells (pooled over images) farther than the 99th percentile of all normal cells' distances.
Features are float32 (the detectors' ``precision=auto`` runs the backbone in bf16 where the CPU has it).

    python benchmarks/thin_defect_response.py --data ../shared/data/mtd --category magnetic_tile --threads 1
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import click
import cv2
import numpy as np
import torch
import torch.nn.functional as F

if __name__ == "__main__":  # benchmarks/detectors.py would shadow the package: the repository root comes first
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from detectors.features import aggregate_patches, default_embed_dim  # noqa: E402
from detectors.models.patchcore import OFFICIAL_EMBED_DIM, PatchCoreConfig, nearest  # noqa: E402
from synth.backbones import STRIDES, Backbone, check_strides, create_backbone  # noqa: E402
from synth.cli import run_command_line  # noqa: E402
from synth.data import load_category  # noqa: E402
from synth.data.images import read_rgb, resize  # noqa: E402
from synth.data.size import ImageSize  # noqa: E402
from synth.errors import SynthError  # noqa: E402
from synth.generators import GeneratorSettings, create_generator, per_sample_rng  # noqa: E402

CONTRAST = 2.5  # local standard deviations: the middle of the strokes generator's default range U(1, 4)
DETECTED_QUANTILE = 0.99
BATCH = 8


@dataclass(frozen=True)
class Feature:
    """A feature map the detectors use: one backbone tap, or PatchCore's aggregation of several."""

    strides: tuple[int, ...]
    aggregated: bool = False

    @property
    def stride(self) -> int:
        return min(self.strides)

    def __str__(self) -> str:
        taps = "+".join(map(str, self.strides))
        return f"PatchCore {taps} (3x3)" if self.aggregated else f"stride {taps}"


@dataclass(frozen=True)
class Detectability:
    """Per-image stroke/normal distance ratios (NaN where the stroke touched no cell) and the detected share."""

    ratios: np.ndarray
    detected: float
    cells: int  # feature cells per image

    def summary(self) -> str:
        if np.isnan(self.ratios).all():
            return "— | —"
        q1, median, q3 = np.nanquantile(self.ratios, (0.25, 0.5, 0.75))
        return f"{median:.2f} [{q1:.2f}, {q3:.2f}] | {self.detected:.0%}"


def stroke_twins(natives: Sequence[np.ndarray], width: int, contrast: float, seed: int) -> list[np.ndarray]:
    """Each native image with a dark ``strokes`` stroke of ``width`` px (the same geometry for every width)."""
    settings = GeneratorSettings(extra={"width": str(width), "contrast": str(contrast), "polarity": "dark"})
    generator = create_generator("strokes", settings)
    return [generator.generate(image, per_sample_rng(seed, i)).image for i, image in enumerate(natives)]


def squash(images: Sequence[np.ndarray], size: ImageSize) -> np.ndarray:
    """The images resized to ``size`` as the loader does, stacked (N, H, W, 3)."""
    return np.stack([resize(image, size) for image in images])


def feature_maps(backbone: Backbone, images: np.ndarray, features: Sequence[Feature]) -> dict[Feature, torch.Tensor]:
    """Each feature as (N, h, w, C) for RGB uint8 images (N, H, W, 3)."""
    taps = sorted({s for f in features for s in f.strides})
    maps: dict[Feature, list[torch.Tensor]] = {f: [] for f in features}
    for start in range(0, len(images), BATCH):
        by_stride = dict(zip(taps, backbone(images[start:start + BATCH], taps)))
        for feature in features:
            if feature.aggregated:
                dim = default_embed_dim(backbone, feature.strides, OFFICIAL_EMBED_DIM)
                maps[feature].append(aggregate_patches([by_stride[s] for s in feature.strides], dim))
            else:
                maps[feature].append(by_stride[feature.stride].permute(0, 2, 3, 1))
    return {feature: torch.cat(parts) for feature, parts in maps.items()}


def touched_cells(changed: np.ndarray, grid: tuple[int, int]) -> torch.Tensor:
    """(N, h, w) bool: the feature cells whose block of the image holds a changed pixel; ``changed`` is (N, H, W)."""
    pixels = torch.from_numpy(changed.astype(np.float32))[:, None]
    return F.adaptive_max_pool2d(pixels, grid)[:, 0] > 0


def distance_to_others(queries: torch.Tensor, owner: int, bank: torch.Tensor) -> torch.Tensor:
    """Distance of each query (Q, C) to its nearest feature among the bank's (N, M, C) images other than ``owner``."""
    return torch.stack([nearest(queries, image)[0][:, 0] for j, image in enumerate(bank) if j != owner]).amin(0)


def reference_distances(normal: torch.Tensor, count: int, rng: np.random.Generator) -> list[torch.Tensor]:
    """Per image, the distances of ``count`` random normal cells of ``normal`` (N, h, w, C) to the other images."""
    if len(normal) < 2:
        raise SynthError("the detectability needs at least 2 images (each is compared with the others)")
    bank = normal.flatten(1, 2)
    picks = [torch.from_numpy(rng.choice(bank.shape[1], min(count, bank.shape[1]), replace=False)) for _ in bank]
    return [distance_to_others(bank[i, cells], i, bank) for i, cells in enumerate(picks)]


def detectability(normal: torch.Tensor, reference: list[torch.Tensor], anomalous: torch.Tensor,
                  stroke: torch.Tensor) -> Detectability:
    """How far the stroke cells of ``anomalous`` (N, h, w, C) lie from the normal features (N, h, w, C) of the
    other images, relative to the normal cells' ``reference`` distances; ``stroke`` (N, h, w) marks the cells
    the stroke touches."""
    bank = normal.flatten(1, 2)
    ratios, pooled = [], []
    for i, normal_d in enumerate(reference):
        if not stroke[i].any():  # the resize left no pixel changed
            ratios.append(float("nan"))
            continue
        stroke_d = distance_to_others(anomalous[i][stroke[i]], i, bank)
        pooled.append(stroke_d)
        ratios.append(float(stroke_d.median() / normal_d.median()))
    threshold = torch.quantile(torch.cat(reference), DETECTED_QUANTILE)
    detected = float((torch.cat(pooled) > threshold).float().mean()) if pooled else float("nan")
    return Detectability(np.array(ratios), detected, bank.shape[1])


def measure_size(backbone: Backbone, normals: np.ndarray, twins: dict[int, np.ndarray], features: Sequence[Feature],
                 reference_cells: int, seed: int) -> dict[tuple[Feature, int], Detectability]:
    """Detectability of each feature and stroke width at one size; ``twins`` maps width -> anomalous images."""
    normal_maps = feature_maps(backbone, normals, features)
    rng = np.random.default_rng(seed)
    references = {feature: reference_distances(normal_maps[feature], reference_cells, rng) for feature in features}
    results = {}
    for width, anomalous in twins.items():
        changed = (anomalous != normals).any(axis=3)
        anomalous_maps = feature_maps(backbone, anomalous, features)
        for feature in features:
            normal = normal_maps[feature]
            stroke = touched_cells(changed, tuple(normal.shape[1:3]))
            results[feature, width] = detectability(normal, references[feature], anomalous_maps[feature], stroke)
    return results


def markdown(results: dict[tuple[Feature, int], Detectability], sizes: Sequence[int], widths: Sequence[int],
             features: Sequence[Feature]) -> str:
    """One row per feature and size: feature cells per image, then per width the ratio and the detected share."""
    head = "| feature | size | cells/image | " + " | ".join(f"{w} px: ratio median [q1, q3] | {w} px: detected"
                                                             for w in widths) + " |"
    lines = [head, "|" + "---|" * (3 + 2 * len(widths))]
    for feature in features:
        for size in sizes:
            row = [results[size, feature, w].summary() for w in widths]
            lines.append(f"| {feature} | {size} | {results[size, feature, widths[0]].cells:,} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def measure(natives: Sequence[np.ndarray], sizes: Sequence[int], widths: Sequence[int], features: Sequence[Feature],
            contrast: float = CONTRAST, reference_cells: int = 1024, seed: int = 0,
            backbone: Backbone | None = None) -> dict[tuple, Detectability]:
    """Detectability keyed by (size, feature, width) for strokes drawn on ``natives`` (RGB uint8, any sizes)."""
    backbone = backbone or create_backbone()
    anomalies = {w: stroke_twins(natives, w, contrast, seed) for w in widths}
    results = {}
    for side in sizes:
        size = ImageSize.square(side)
        twins = {w: squash(images, size) for w, images in anomalies.items()}
        for (feature, width), value in measure_size(backbone, squash(natives, size), twins, features,
                                                    reference_cells, seed).items():
            results[side, feature, width] = value
    return results


def normal_images(root: Path, category: str, count: int, side: int) -> list[np.ndarray]:
    """``count`` normal training images of the category, evenly spread over its list, at their stored size
    (the category is read at ``side`` to list them, so the loader's notes are about that size)."""
    data = load_category(root, category, size=ImageSize.square(side))
    if len(data) < 2:
        raise SynthError(f"{category} has {len(data)} normal training image(s); the measurement needs at least 2")
    picks = np.unique(np.linspace(0, len(data) - 1, min(count, len(data))).round().astype(int))
    return [read_rgb(data.root / data.train_ids[i]) for i in picks]


def int_list(text: str, what: str, low: int) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise SynthError(f"{what} must be comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < low:
        raise SynthError(f"{what} must be at least {low}, got {text!r}")
    return values


def patchcore_feature(text: str) -> Feature:
    strides = tuple(int_list(text, "--patchcore", 1))
    check_strides(strides)
    return Feature(tuple(sorted(strides)), aggregated=True)


@click.command("thin_defect_response")
@click.option("--data", "root", type=click.Path(path_type=Path), default=Path("../shared/data/mtd"), show_default=True)
@click.option("--category", default="magnetic_tile", show_default=True)
@click.option("--images", "count", type=click.IntRange(2), default=16, show_default=True, help="Normal images used.")
@click.option("--sizes", default="128,256,384,512", show_default=True, help="Input sides (images squashed to them).")
@click.option("--widths", default="1,2,4", show_default=True, help="Stroke widths in native pixels.")
@click.option("--contrast", type=click.FloatRange(0, min_open=True), default=CONTRAST, show_default=True,
              help="Stroke contrast in local standard deviations (strokes' option).")
@click.option("--patchcore", "aggregations", multiple=True, default=(",".join(map(str, PatchCoreConfig.strides)),),
              show_default=True, help="Taps of a PatchCore aggregated feature row (repeatable).")
@click.option("--reference-cells", type=click.IntRange(1), default=1024, show_default=True,
              help="Normal cells per image whose distances give the median and the 99th percentile.")
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="torch and OpenCV threads.")
def command(root: Path, category: str, count: int, sizes: str, widths: str, contrast: float,
            aggregations: tuple[str, ...], reference_cells: int, seed: int, threads: int) -> None:
    """Print the detectability table (markdown)."""
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    sides, stroke_widths = int_list(sizes, "--sizes", 32), int_list(widths, "--widths", 1)
    features = [Feature((s,)) for s in STRIDES] + [patchcore_feature(text) for text in aggregations]
    natives = normal_images(root, category, count, min(sides))
    results = measure(natives, sides, stroke_widths, features, contrast, reference_cells, seed)
    click.echo(f"{category}: {len(natives)} normal images, dark strokes of contrast {contrast:g} local std, "
               f"widths in native pixels")
    click.echo(markdown(results, sides, stroke_widths, features))


def main(argv: Sequence[str] | None = None) -> None:
    """Bad input ends with one line on stderr and exit status 2."""
    run_command_line(command, argv, "thin_defect_response")


if __name__ == "__main__":
    main()
