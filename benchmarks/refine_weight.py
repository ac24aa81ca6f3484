"""patchcore-refine's `weight_refine` after the fit: held-out synthetic score and test metrics per weight.

    python benchmarks/refine_weight.py --model MODEL --anomalies SHARDS [--data ../shared/data/mtd --category magnetic_tile]

For a saved `patchcore-refine` model and the shards it was fitted on, rebuilds the fit's held-out
synthetic rows (same seed, same cross-fitted maps), runs the network once on them and once on the test
set, and prints, for each weight w in the grid, the held-out synthetic score that a selection would use
(`validation_score`, the one the fit's checkpoints are chosen on) beside the test metrics of
map + w x residual. It answers whether choosing w on synthetic rows would help on real defects; it is a
measurement, not a selection rule (the test columns are never used to choose anything).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np
import torch

if __name__ == "__main__":  # benchmarks/detectors.py would shadow the package: the repository root comes first
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from detectors.base import load_detector  # noqa: E402
from detectors.cli import load_training  # noqa: E402
from detectors.evaluation.bench import TestSet  # noqa: E402
from detectors.evaluation.metrics import evaluate  # noqa: E402
from detectors.models.refine import PatchCoreRefine, held_out_samples  # noqa: E402
from detectors.training.crossfit import cross_fitted_maps, split_folds  # noqa: E402
from detectors.training.loop import anomaly_sources, split_rows, validation_score  # noqa: E402
from synth.data import load_category  # noqa: E402

WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


def residuals(model: PatchCoreRefine, images: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """The network's residual for normalised ``maps``, in batches."""
    step, out = model.config.batch_size, []
    with torch.no_grad():
        for start in range(0, len(images), step):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=model.config.use_bf16()):
                out.append(model.network(torch.as_tensor(images[start:start + step]),
                                         torch.as_tensor(maps[start:start + step])).float().numpy())
    return np.concatenate(out)


def weighted(maps: np.ndarray, residual: np.ndarray, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Image scores (map maxima) and maps of map + weight x residual."""
    final = maps + weight * residual
    return final.reshape(len(final), -1).max(axis=1), final


@click.command()
@click.option("--model", type=click.Path(exists=True, path_type=Path), required=True, help="A saved patchcore-refine.")
@click.option("--anomalies", required=True, help="The synth shards the model was fitted on.")
@click.option("--data", default="../shared/data/mtd", show_default=True, type=click.Path(path_type=Path))
@click.option("--category", default="magnetic_tile", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="JSON file for the table.")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True)
def main(model: Path, anomalies: str, data: Path, category: str, out: Path | None, threads: int) -> None:
    torch.set_num_threads(threads)
    detector = load_detector(model)
    if not isinstance(detector, PatchCoreRefine):
        raise click.UsageError(f"{model} holds a {detector.name}, not a patchcore-refine")
    config, size = detector.config, detector.config.image_size()
    images = load_category(data, category, size=size)
    # The held-out rows exactly as fit() drew them: the same rng, consumed in the same order.
    train = load_training(images, [anomalies], None, None)
    sources = anomaly_sources(detector.name, train)
    rng = np.random.default_rng(config.seed)
    crossfit = cross_fitted_maps(train, sources, split_folds(len(train.normal), rng), detector._new_patchcore)
    _, held = split_rows(len(train.anomalous), config.val_fraction, rng)
    held_out = held_out_samples(train, held, sources, detector.scale(crossfit.normal), detector.scale(crossfit.anomalous))
    held_residual = residuals(detector, held_out.images, held_out.maps)
    test = TestSet.from_category(images, size)
    test_maps = np.concatenate([detector.scale(detector.patchcore._score(test.images[start:start + 8])[1])
                                for start in range(0, len(test.images), 8)])
    test_residual = residuals(detector, test.images, test_maps)
    rows = {}
    click.echo("| weight_refine | held-out synthetic score | image AUROC | pixel AUROC | AUPRO@0.3 | pixel AP |")
    click.echo("|---|---|---|---|---|---|")
    for weight in WEIGHTS:
        held_score = validation_score(*weighted(held_out.maps, held_residual, weight), held_out.targets > 0.5)
        scores, maps = weighted(test_maps, test_residual, weight)
        rows[weight] = {"held_out": held_score, **evaluate(test.labels, scores, test.masks, maps)}
        metrics = rows[weight]
        click.echo(f"| {weight} | {held_score:.4f} | {metrics['image_auroc']:.4f} | {metrics['pixel_auroc']:.4f} | "
                   f"{metrics['aupro_0.3']:.4f} | {metrics['pixel_ap']:.4f} |")
    if out:
        out.write_text(json.dumps({str(weight): row for weight, row in rows.items()}, indent=1) + "\n")


if __name__ == "__main__":
    main()
