"""The benchmark harness: fit detectors on a category, score its test set, write metrics and overlays.

Model-independent: it only uses the ``Detector`` interface, so every registered detector can be
benchmarked. Output directory: ``results.json``, ``results.md``, ``models/<detector>/`` (fitted
models) and ``overlays/<detector>_<n>.png`` (image | ground-truth outline | heatmap).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch

from detectors.base import Detector, create_detector
from detectors.data.training import TrainingSet
from detectors.evaluation.metrics import bootstrap_intervals, evaluate, image_auroc, image_f1_max
from synth.data import Category, ImageSize
from synth.data.images import warn_once
from synth.errors import SynthError
from synth.pipeline.provenance import data_role, portable_value
from synth.shards.card import write_text_atomic

METRIC_COLUMNS = {"image_auroc": "image AUROC", "pixel_auroc": "pixel AUROC", "aupro_0.3": "AUPRO@0.3",
                  "pixel_ap": "pixel AP", "image_f1_max": "image F1-max"}
OUTLINE = (0, 255, 0)  # ground-truth outline colour (RGB)
RESULT_ENTRIES = ("results.json", "results.md", "models", "overlays")  # what a results directory holds


@dataclass
class TestSet:
    """A category's test images (N, H, W, 3), masks (N, H, W) {0, 255}, labels (N,) and defect names."""

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    defects: list[str]

    @classmethod
    def from_category(cls, category: Category, size: ImageSize) -> "TestSet":
        if not category.test:
            raise SynthError(f"category {category.name!r} has no test images")
        unmasked = next((item for item in category.test if item.label and item.mask_path is None), None)
        if unmasked is not None:
            raise SynthError(f"the defective test image {unmasked.path} has no ground-truth mask "
                             f"(look for the ground_truth/{unmasked.defect} folder of category {category.name})")
        if not any(item.label for item in category.test):
            raise SynthError(f"category {category.name!r} has no defective test images (test/<defect>/ folders "
                             "with ground_truth/<defect>/ masks): there is nothing to evaluate a detector on")
        loaded = [item.load(size) for item in category.test]
        test = cls(np.stack([image for image, _ in loaded]), np.stack([mask for _, mask in loaded]),
                   np.array([item.label for item in category.test]), [item.defect for item in category.test])
        test.check_masks(category.name, size)
        return test

    def check_masks(self, category: str, size: ImageSize) -> None:
        """Error if no defective image has a defect pixel at ``size``; a warning names the masks that are empty."""
        defective = np.flatnonzero(self.labels)
        empty = [i for i in defective if not self.masks[i].any()]
        if len(empty) == len(defective):
            raise SynthError(f"no ground-truth mask of category {category!r} marks a defect pixel at --size {size} "
                             "(masks mark defects with their brightest value on a 0 background)")
        if empty:
            counts = Counter(self.defects[i] for i in empty)
            warn_once(f"{len(empty)} of {len(defective)} defect masks of {category!r} are empty at --size {size} "
                      f"({', '.join(f'{defect}: {n}' for defect, n in sorted(counts.items()))}): their defects are "
                      "smaller than a pixel there or the masks are blank; the pixel metrics count all their pixels as normal")


@dataclass
class Result:
    """Metrics, their 95% bootstrap intervals over test images, image scores (test-set order) and timings
    of one detector on one test set; ``training`` is the detector's training summary, None without one."""

    detector: str
    metrics: dict[str, float]
    fit_seconds: float | None  # None when a saved model was only scored
    score_seconds: float
    images_per_second: float
    train_images: int
    train_anomalies: int
    config: dict[str, Any]
    intervals: dict[str, list[float]]
    image_scores: list[float]
    training: dict[str, Any] | None


def fit_detector(detector: Detector, data: TrainingSet) -> float:
    """Fit (on tiles of ``data`` if the detector is tiled), record the training image size in the config,
    and return the wall time in seconds."""
    start = time.perf_counter()
    tiler = detector.config.tiler()
    detector.fit(tiler.training_set(data) if tiler else data)
    detector.config.record_size(data.size)
    return time.perf_counter() - start


def evaluate_on_test_set(detector: Detector, test: TestSet, fit_seconds: float | None = None,
                         data: TrainingSet | None = None) -> tuple[Result, np.ndarray]:
    """Score ``test`` with ``detector`` (fitted on ``data``, None for a loaded model): its Result and anomaly maps."""
    start = time.perf_counter()
    scores, maps = detector.score(test.images)
    seconds = time.perf_counter() - start
    metrics = evaluate(test.labels, scores, test.masks, maps)
    intervals = bootstrap_intervals(test.labels, scores, test.masks, maps)
    result = Result(detector.name, metrics, fit_seconds, seconds, len(test.images) / seconds,
                    len(data.normal) if data else 0, len(data.anomalous) if data else 0, asdict(detector.config),
                    {key: list(interval) for key, interval in intervals.items()}, [float(score) for score in scores],
                    getattr(detector, "training", None))
    return result, maps


def metrics_per_defect(test: TestSet, scores: np.ndarray, maps: np.ndarray) -> dict[str, dict[str, float | None]]:
    """Every metric on the normal test images plus one defect type's images, per defect type (sorted by name).

    Image AUROC then ranks that type against the normal images; the pixel metrics see only its masks
    (None for a type whose masks are all empty).
    """
    defects = np.array(test.defects)
    normal = test.labels == 0
    results = {}
    for defect in sorted(set(defects[~normal])):
        chosen = normal | (defects == defect)
        if test.masks[chosen].any():
            results[defect] = evaluate(test.labels[chosen], scores[chosen], test.masks[chosen], maps[chosen])
        else:  # its masks are all empty at this size (see TestSet.check_masks): image metrics only
            results[defect] = {**{key: None for key in METRIC_COLUMNS},
                               "image_auroc": image_auroc(test.labels[chosen], scores[chosen]),
                               "image_f1_max": image_f1_max(test.labels[chosen], scores[chosen])}
    return results


def per_defect_table(per_defect: dict[str, dict[str, float | None]]) -> str:
    """A markdown table: one row per defect type, the metric columns of ``markdown_table``."""
    lines = ["| defect | " + " | ".join(METRIC_COLUMNS.values()) + " |", "|" + "---|" * (len(METRIC_COLUMNS) + 1)]
    lines += [f"| {defect} | " + " | ".join("–" if metrics[key] is None else f"{metrics[key]:.4f}"
                                        for key in METRIC_COLUMNS) + " |"
              for defect, metrics in per_defect.items()]
    return "\n".join(lines) + "\n"


def labels_and_defects(test: TestSet) -> dict[str, list]:
    """The test labels (0 normal, 1 anomalous) and defect names, in the order of the image scores."""
    return {"labels": [int(label) for label in test.labels], "defects": list(test.defects)}


def overlay(image: np.ndarray, mask: np.ndarray, anomaly_map: np.ndarray, low: float, high: float) -> np.ndarray:
    """Three panels side by side: the image, the image with the ground truth outlined, the heatmap blend."""
    outlined = image.copy()
    contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(outlined, contours, -1, OUTLINE, 1)
    level = np.clip((anomaly_map - low) / max(high - low, 1e-12), 0, 1)
    heat = cv2.cvtColor(cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    blend = cv2.addWeighted(image, 0.5, heat, 0.5, 0)
    cv2.drawContours(blend, contours, -1, OUTLINE, 1)
    return np.concatenate([image, outlined, blend], axis=1)


def overlay_indices(test: TestSet, count: int) -> list[int]:
    """The first anomalous image of each defect type, more anomalous ones spread over the rest, one normal image."""
    anomalous = [i for i, label in enumerate(test.labels) if label]
    firsts = sorted({test.defects[i]: i for i in reversed(anomalous)}.values())
    spread = [i for i in anomalous[::max(1, len(anomalous) // max(count, 1))] if i not in firsts]
    normal = [i for i, label in enumerate(test.labels) if not label][:1]
    return sorted((firsts + spread)[:max(count - len(normal), 0)] + normal)[:count]


def write_overlays(directory: Path, name: str, test: TestSet, maps: np.ndarray, count: int) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    low, high = float(maps.min()), float(maps.max())
    paths = []
    for index in overlay_indices(test, count):
        path = directory / f"{name}_{index:03d}_{test.defects[index]}.png"
        panel = overlay(test.images[index], test.masks[index], maps[index], low, high)
        cv2.imwrite(str(path), cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
        paths.append(str(path))
    return paths


def metric_cell(result: Result, key: str) -> str:
    """The metric to 4 decimals, followed by its bootstrap interval where it has one: ``0.9876 [0.962, 1.000]``."""
    if key not in result.intervals:
        return f"{result.metrics[key]:.4f}"
    low, high = result.intervals[key]
    return f"{result.metrics[key]:.4f} [{low:.3f}, {high:.3f}]"


def markdown_table(results: Sequence[Result]) -> str:
    header = ["detector", *METRIC_COLUMNS.values(), "fit (s)", "score (img/s)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result in results:
        cells = [result.detector, *(metric_cell(result, key) for key in METRIC_COLUMNS),
                 "—" if result.fit_seconds is None else f"{result.fit_seconds:.1f}", f"{result.images_per_second:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_bench(category: Category, names: Sequence[str], out: str | Path, train: TrainingSet,
              settings: dict[str, dict[str, Any]] | None = None, paper: bool = False,
              overlays: int = 4, overwrite: bool = False) -> list[Result]:
    """Fit and evaluate each detector in ``names`` on ``category``; write results under ``out``."""
    out = Path(out)
    check_results_dir(out, overwrite)
    detectors = [create_detector(name, paper, **(settings or {}).get(name, {})) for name in names]
    test = TestSet.from_category(category, train.size)
    normal_only = TrainingSet(train.normal)
    for detector in detectors:
        detector.check_training_data(train if detector.uses_anomalies else normal_only)
    results = []
    for detector in detectors:
        data = train if detector.uses_anomalies else normal_only
        fit_seconds = fit_detector(detector, data)
        detector.save(out / "models" / detector.name, overwrite=overwrite)
        result, maps = evaluate_on_test_set(detector, test, fit_seconds, data)
        write_overlays(out / "overlays", detector.name, test, maps, overlays)
        results.append(result)
    write_results(out, category, test, results)
    return results


def check_results_dir(out: Path, overwrite: bool) -> None:
    """Refuse an output directory that holds anything but bench results, or results without ``overwrite``."""
    if not out.exists():
        return
    if not out.is_dir():
        raise SynthError(f"--out {out} is not a directory")
    others = sorted(p.name for p in out.iterdir() if p.name not in RESULT_ENTRIES and not p.name.startswith("."))
    if others:
        raise SynthError(f"{out} is not a results directory (it holds {others[0]}"
                         f"{f' and {len(others) - 1} more' if len(others) > 1 else ''}); choose a new or empty --out")
    if (out / "results.json").exists() and not overwrite:
        raise SynthError(f"{out} already holds results; pass --overwrite to replace them")


def write_results(out: Path, category: Category, test: TestSet, results: Sequence[Result]) -> None:
    """results.json and results.md; machine paths (data root, weights files) are written as their roles."""
    roles = {category.root: data_role(category.layout)} if category.root else {}
    document = {"category": category.name, "data": str(category.root) if category.root else None,
                "torch_threads": torch.get_num_threads(), **labels_and_defects(test),
                "results": [asdict(result) for result in results]}
    document = portable_value(document, roles)
    write_text_atomic(out / "results.json", json.dumps(document, indent=2) + "\n")  # present means finished
    title = f"# {category.name} ({document['data'] or 'built-in'})\n\n"
    (out / "results.md").write_text(title + markdown_table(results))
