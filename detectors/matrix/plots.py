"""The matrix's plots (matplotlib, the optional ``plots`` extra): AUROC per cell, anomalies beside maps.

``auroc_<category>.png``: image and pixel AUROC of every cell, the seed mean with the 95 % bootstrap
interval over test images (each seed's, bounds averaged) and each seed as a dot; PatchCore as a line
with its interval as a band. ``sheet_<category>.png``: per generator a few of its anomalies (seed 0,
mask outlined) beside the maps of one detector trained on them, on the real test images that
`detectors bench` drew its overlays of; PatchCore's maps and the ground truth on top.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from detectors.data.training import read_anomalies
from detectors.matrix.engine import REFERENCE, Cell, Group, Matrix
from detectors.matrix.stats import best_cell, mean_interval, values_of
from synth.errors import SynthError
from synth.pipeline.preview import outline

log = logging.getLogger("detectors")
METRICS = (("image_auroc", "image AUROC"), ("pixel_auroc", "pixel AUROC"))
SHEET_ANOMALIES = 4  # anomalies per generator on the sheet
SHEET_MAPS = 4  # test images per row (the overlays each bench writes)
INSTALL = "pip install 'synth[plots]'"


@lru_cache(maxsize=1)
def pyplot() -> Any | None:
    """matplotlib's pyplot on a file backend; None (and one warning line) where it is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("the report's plots need matplotlib: %s", INSTALL)
        return None
    return plt


def auroc_plot(path: Path, matrix: Matrix, category: str, groups: dict[Group, list[dict]]) -> None:
    """Image AUROC above pixel AUROC; per generator one mark per detector, PatchCore as the line."""
    plt = pyplot()
    if plt is None:
        return
    width = max(6.0, 1.5 + 0.35 * len(matrix.rows) * (len(matrix.detectors) + 1))
    figure, axes = plt.subplots(2, 1, figsize=(width, 7), sharex=True)
    offsets = np.linspace(-0.3, 0.3, len(matrix.detectors)) if len(matrix.detectors) > 1 else [0.0]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    reference = groups.get((category, None, REFERENCE), [])
    for ax, (key, title) in zip(axes, METRICS):
        if values_of(reference, key):
            mean = float(np.mean(values_of(reference, key)))
            ax.axhline(mean, color="black", linestyle="--", linewidth=1, label=f"PatchCore {mean:.3f}")
            bounds = mean_interval(reference, key)
            if bounds:
                ax.axhspan(*bounds, color="black", alpha=0.08, linewidth=0)
        for i, (offset, detector) in enumerate(zip(offsets, matrix.detectors)):
            colour, label = colours[i % len(colours)], detector
            for x, generator in enumerate(matrix.rows):
                results = groups.get((category, generator, detector), [])
                values = values_of(results, key)
                if not values:
                    continue
                mean, bounds = float(np.mean(values)), mean_interval(results, key)
                error = [[mean - bounds[0]], [bounds[1] - mean]] if bounds else None
                ax.errorbar(x + offset, mean, yerr=error, fmt="o", color=colour, capsize=3, label=label)
                ax.scatter([x + offset] * len(values), values, s=8, color=colour, alpha=0.4)
                label = None  # one legend entry per detector
        for x in range(1, len(matrix.rows)):
            ax.axvline(x - 0.5, color="0.85", linewidth=0.8)
        ax.set_xlim(-0.5, len(matrix.rows) - 0.5)
        ax.set_ylabel(title)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    axes[0].set_title(f"{category}: seed mean, 95 % bootstrap interval over test images, seeds as dots", fontsize=10)
    axes[-1].set_xticks(range(len(matrix.rows)), matrix.rows, rotation=20 if len(matrix.rows) > 4 else 0)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def anomaly_tiles(matrix: Matrix, category: str, row: str) -> list[np.ndarray]:
    """A few of the row's anomalies (seed 0) with their masks outlined; none where its shards are missing."""
    cell = Cell(category, row, matrix.detectors[0], 0)
    shards = matrix.shards_of(cell)
    source = shards.directory(matrix.work) if shards else matrix.root / matrix.anomalies[row]
    if not (source / "data").is_dir():
        return []
    try:
        return [outline(image, mask) for image, mask in read_anomalies(source, matrix.size, SHEET_ANOMALIES)]
    except SynthError as error:  # a damaged set leaves its row empty, the report stands
        log.warning("%s: no anomalies on the sheet (%s)", row, error)
        return []


def overlay_panels(matrix: Matrix, cell: Cell) -> dict[str, list[np.ndarray]]:
    """The overlays `detectors bench` wrote for ``cell`` by file name: [image, ground truth, map] (RGB)."""
    folder = cell.directory(matrix.work) / "overlays"
    panels = {}
    for path in sorted(folder.glob(f"{cell.detector}_*.png"))[:SHEET_MAPS]:
        image = cv2.imread(str(path))
        if image is not None:
            panels[path.name[len(cell.detector):]] = np.split(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), 3, axis=1)
    return panels


def sheet(path: Path, matrix: Matrix, category: str, detector: str) -> None:
    """Per row its anomalies and ``detector``'s maps after training on them; ground truth and PatchCore on top."""
    plt = pyplot()
    if plt is None:
        return
    reference = overlay_panels(matrix, Cell(category, None, REFERENCE, 0))
    trained = {row: overlay_panels(matrix, Cell(category, row, detector, 0)) for row in matrix.rows}
    names = list(reference) or next((list(panels) for panels in trained.values() if panels), [])

    def panel(panels: dict[str, list[np.ndarray]], name: str, index: int = 2) -> np.ndarray | None:
        return panels[name][index] if name in panels else None

    truth = [next((p[name][1] for p in (reference, *trained.values()) if name in p), None) for name in names]
    rows = [("real test images\n(ground truth)", [], truth),
            ("normal only\npatchcore", [], [panel(reference, name) for name in names]),
            *((f"{row}\n{detector}", anomaly_tiles(matrix, category, row),
               [panel(trained[row], name) for name in names]) for row in matrix.rows)]
    columns = SHEET_ANOMALIES + max(len(names), 1)
    figure, axes = plt.subplots(len(rows), columns, figsize=(1.3 * columns + 1.2, 1.3 * len(rows) + 0.6),
                                squeeze=False)
    for r, (label, anomalies, maps) in enumerate(rows):
        tiles = [*pad(anomalies, SHEET_ANOMALIES), *pad(maps, columns - SHEET_ANOMALIES)]
        for ax, tile in zip(axes[r], tiles):
            ax.axis("off")
            if tile is not None:
                ax.imshow(tile, interpolation="nearest")
        axes[r][0].text(-0.1, 0.5, label, transform=axes[r][0].transAxes, ha="right", va="center", fontsize=8)
    axes[0][0].set_title("synthetic anomalies (seed 0)", loc="left", fontsize=9)
    axes[0][SHEET_ANOMALIES].set_title("maps on real test images (seed 0)", loc="left", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def pad(tiles: Sequence[np.ndarray | None], count: int) -> list[np.ndarray | None]:
    return [*tiles[:count], *[None] * (count - len(tiles[:count]))]


def write_plots(matrix: Matrix, groups: dict[Group, list[dict]]) -> dict[str, dict[str, str]]:
    """Both plots of every category into the work folder: their file names per category ({} without matplotlib)."""
    if pyplot() is None:
        return {}
    written = {}
    for category in matrix.categories:
        names = {"auroc": f"auroc_{category}.png"}
        auroc_plot(matrix.work / names["auroc"], matrix, category, groups)
        best = best_cell(category, groups)
        if matrix.overlays:
            names["sheet"] = f"sheet_{category}.png"
            sheet(matrix.work / names["sheet"], matrix, category, best[1] if best else matrix.detectors[0])
        written[category] = names
    return written
