"""PatchCore's feature scales chosen on synthetic anomalies: held-out synthetic metrics and test metrics per stride set.

    python benchmarks/patchcore_strides.py --anomalies SHARDS [--data ../shared/data/mtd --category magnetic_tile]
        [--size 256] [--strides 4,8 --strides 8,16 --strides 16,32 --strides 8,16,32] [--seed 0] [--out FILE]

For each stride set (which backbone taps PatchCore's patch features come from), the normal training images
are split into two halves; a PatchCore is fitted on each half and scores the normal images and the
synthetic anomalies of the other half (`cross_fitted_maps`, as patchcore-refine's training maps), so every
map comes from a bank that never held the image or the normal image it was made from. The synthetic
columns are metrics of those maps (image score: the map's maximum); the selection rule is the project's
held-out score (`validation_score`: mean of image AUROC and pixel AP). Then a PatchCore with the same
strides is fitted on all normal images and scored on the real test set, printed beside it only to judge
the rule: nothing is chosen on the test columns.
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

from detectors.cli import load_training  # noqa: E402
from detectors.data.training import TrainingSet  # noqa: E402
from detectors.evaluation.bench import TestSet  # noqa: E402
from detectors.evaluation.metrics import evaluate  # noqa: E402
from detectors.models.patchcore import PatchCore, PatchCoreConfig  # noqa: E402
from detectors.training.crossfit import cross_fitted_maps, split_folds  # noqa: E402
from detectors.training.loop import anomaly_sources, validation_score  # noqa: E402
from synth.data import load_category  # noqa: E402
from synth.data.size import parse_size  # noqa: E402

DEFAULT_CANDIDATES = ("4,8", "8,16", "16,32", "8,16,32")
METRICS = ("image_auroc", "pixel_auroc", "aupro_0.3", "pixel_ap")


def parse_strides(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of strides") from None


def synthetic_metrics(train: TrainingSet, sources: np.ndarray, strides: tuple[int, ...], seed: int) -> dict[str, float]:
    """Metrics of cross-fitted PatchCore maps on the synthetic anomalies (positives) and normal images (negatives)."""
    folds = split_folds(len(train.normal), np.random.default_rng(seed))
    crossfit = cross_fitted_maps(train, sources, folds, lambda: PatchCore(PatchCoreConfig(strides=strides, seed=seed)))
    masks = np.concatenate([np.zeros_like(crossfit.normal, np.uint8),
                            train.anomalous_images(np.arange(len(train.anomalous)))[1]])
    maps = np.concatenate([crossfit.normal, crossfit.anomalous])
    scores = maps.reshape(len(maps), -1).max(axis=1)
    labels = masks.reshape(len(masks), -1).any(axis=1)
    return {"held_out": validation_score(scores, maps, masks > 127), **evaluate(labels, scores, masks, maps)}


def test_metrics(train: TrainingSet, test: TestSet, strides: tuple[int, ...], seed: int) -> dict[str, float]:
    """Pooled test metrics of a PatchCore with ``strides`` fitted on all normal images, and each defect's pixel AUROC."""
    detector = PatchCore(PatchCoreConfig(strides=strides, seed=seed))
    detector.fit(TrainingSet(train.normal))
    scores, maps = detector.score(test.images)
    found = evaluate(test.labels, scores, test.masks, maps)
    defects = np.array(test.defects)
    for defect in sorted({d for d, label in zip(test.defects, test.labels) if label}):
        rows = (defects == defect) | ~test.labels.astype(bool)
        found[f"{defect}_pixel_auroc"] = evaluate(test.labels[rows], scores[rows], test.masks[rows], maps[rows])["pixel_auroc"]
    return found


@click.command()
@click.option("--anomalies", required=True, help="synth shards of the category (the synthetic validation rows).")
@click.option("--data", default="../shared/data/mtd", show_default=True, type=click.Path(path_type=Path))
@click.option("--category", default="magnetic_tile", show_default=True)
@click.option("--size", default="256", show_default=True, help="One side or HEIGHTxWIDTH.")
@click.option("--strides", "candidates", multiple=True, default=DEFAULT_CANDIDATES, show_default=True,
              help="A stride set to try (repeat the option).")
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="JSON file for the table.")
def main(anomalies: str, data: Path, category: str, size: str, candidates: tuple[str, ...], seed: int, threads: int,
         out: Path | None) -> None:
    torch.set_num_threads(threads)
    image_size = parse_size(size)
    images = load_category(data, category, size=image_size)
    train = load_training(images, [anomalies], None, None)
    sources = anomaly_sources("patchcore", train)
    test = TestSet.from_category(images, image_size)
    rows = {}
    for text in candidates:
        strides = parse_strides(text)
        rows[text] = {"synthetic": synthetic_metrics(train, sources, strides, seed),
                      "test": test_metrics(train, test, strides, seed)}
        click.echo(f"{text}: {json.dumps(rows[text])}", err=True)
    chosen = max(rows, key=lambda text: rows[text]["synthetic"]["held_out"])
    defects = sorted(key for key in rows[chosen]["test"] if key.endswith("_pixel_auroc") and key != "pixel_auroc")
    click.echo("| strides | held-out synthetic score | synthetic " + " / ".join(METRICS) + " | test " + " / ".join(METRICS)
               + " | test pixel AUROC per defect (" + ", ".join(d.removesuffix("_pixel_auroc") for d in defects) + ") |")
    click.echo("|---|---|---|---|---|")
    for text, row in rows.items():
        synthetic = " / ".join(f"{row['synthetic'][m]:.3f}" for m in METRICS)
        tested = " / ".join(f"{row['test'][m]:.3f}" for m in METRICS)
        per_defect = " / ".join(f"{row['test'][d]:.3f}" for d in defects)
        mark = " (chosen)" if text == chosen else ""
        click.echo(f"| {text}{mark} | {row['synthetic']['held_out']:.4f} | {synthetic} | {tested} | {per_defect} |")
    if out:
        out.write_text(json.dumps({"chosen": chosen, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
