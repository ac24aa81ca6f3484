"""Where a saved detector's pooled pixel AUROC is lost: defect pixels against which normal pixels.

    python benchmarks/pixel_pools.py --model MODEL [--model MODEL2 ...] \
        --data ../shared/data/mtd --category magnetic_tile

Pooled pixel AUROC ranks every defect pixel against every other pixel of the test set: the pixels of
the normal test images and the unlabelled pixels of the defective ones. This splits that pool for
each model (``detectors fit ... --out MODEL``) and prints one AUROC per pair of pixel sets:

- ``pooled``: the metric as reported (all pixels);
- ``defects vs normal images``: defect pixels against the pixels of the normal test images only;
- ``defects vs rest of their images``: against the unlabelled pixels of the defective images only;
- ``rest of defective images vs normal images``: how much more anomalous the unlabelled parts of the
  defective images score than normal images; ``... > FAR px from a mask``: the same for the unlabelled
  pixels farther than FAR px from any defect (what smoothing or loose masks cannot explain);
- per defect type, its pixels against the normal images and against the rest of its own images.

Each is ``PixelScores`` with ``valid`` selecting the two sets; nothing is chosen from it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np
from scipy import ndimage

if __name__ == "__main__":  # benchmarks/detectors.py would shadow the package: the repository root comes first
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from detectors.base import load_detector  # noqa: E402
from detectors.evaluation.bench import TestSet  # noqa: E402
from detectors.evaluation.metrics import PixelScores  # noqa: E402
from synth.data import load_category  # noqa: E402


def pools(test: TestSet, maps: np.ndarray, far: float) -> dict[str, float]:
    """AUROC of each positive pixel set against each negative set (see the module docstring)."""
    defects = test.masks > 0
    normal_images = np.broadcast_to((test.labels == 0)[:, None, None], defects.shape)
    defective_images = ~normal_images
    rest = defective_images & ~defects
    distant = rest & np.stack([ndimage.distance_transform_edt(~mask) > far for mask in defects])

    def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
        return PixelScores(positive, maps, valid=positive | negative).auroc()

    found = {"pooled": PixelScores(defects, maps).auroc(),
             "defects vs normal images": auroc(defects, normal_images),
             "defects vs rest of their images": auroc(defects, rest),
             "rest of defective images vs normal images": auroc(rest, normal_images),
             f"rest of defective images > {far:g} px from a mask vs normal images": auroc(distant, normal_images)}
    for defect in sorted(set(test.defects) - {test.defects[i] for i in np.flatnonzero(test.labels == 0)}):
        own = np.broadcast_to(np.array([d == defect for d in test.defects])[:, None, None], defects.shape)
        found[f"{defect} vs normal images"] = auroc(defects & own, normal_images)
        found[f"{defect} vs rest of its images"] = auroc(defects & own, rest & own)
    return found


@click.command()
@click.option("--model", "models", multiple=True, required=True, type=click.Path(path_type=Path, exists=True),
              help="A saved model (`detectors fit --out`), repeatable.")
@click.option("--data", "root", type=click.Path(path_type=Path, exists=True), default=Path("../shared/data/mtd"))
@click.option("--category", default="magnetic_tile", show_default=True)
@click.option("--far", type=click.FloatRange(0), default=8.0, show_default=True,
              help="Pixels from the nearest defect beyond which an unlabelled pixel counts as far.")
def main(models: tuple[Path, ...], root: Path, category: str, far: float) -> None:
    rows = {}
    for model in models:
        detector = load_detector(model)
        size = detector.config.image_size()
        test = TestSet.from_category(load_category(root, category, size=size), size)
        rows[model.name] = pools(test, detector.score(test.images)[1], far)
    names = list(rows)
    print("| pixels | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for key in rows[names[0]]:
        print(f"| {key} | " + " | ".join(f"{rows[name][key]:.3f}" for name in names) + " |")


if __name__ == "__main__":
    main()
