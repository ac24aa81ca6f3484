"""Detector speed on CPU: fit time, inference images/s and peak memory; PatchCore's coreset selection.

Each detector runs in its own process (so that the peak RSS is its own) on a real category:

    python benchmarks/detectors.py --data ../shared/data/mpdd --category metal_plate --threads 1
    python benchmarks/detectors.py --data ../shared/data/mpdd --category metal_plate --coreset-only

Wall and CPU seconds are both printed: on a shared machine the wall time depends on the load, the
CPU time much less. The coreset part embeds the training images once and times the approximate
greedy selection (128-d random projection, as PatchCore) against the plain greedy selection on the
unprojected features, for the same number of picks, and reports the coverage radius of each
(largest distance of any patch feature to its nearest selected one, in the full feature space).
Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

# This file shares the package's name: the repository root, not benchmarks/, must come first on the path.
sys.path[0] = str(Path(__file__).resolve().parents[1])


def _timed(function, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def measure_detector(name: str, args: argparse.Namespace) -> dict:
    """Fit ``name`` on the category's training images and score its test images, in this process."""
    import numpy as np
    import torch

    from detectors import TrainingSet, create_detector
    from detectors.evaluation.bench import TestSet
    from synth.data import load_category

    torch.set_num_threads(args.threads)
    category = load_category(args.data, args.category, size=args.size)
    train = TrainingSet(category.train_images[:args.train] if args.train else category.train_images)
    test = TestSet.from_category(category, category.size)
    images = test.images[:args.test] if args.test else test.images
    detector = create_detector(name, **json.loads(args.settings).get(name, {}))
    _, fit_wall, fit_cpu = _timed(detector.fit, train)
    _, score_wall, score_cpu = _timed(detector.score, np.asarray(images))
    return dict(detector=name, train=len(train.normal), test=len(images), fit_s=fit_wall, fit_cpu_s=fit_cpu,
                images_per_s=len(images) / score_wall, images_per_cpu_s=len(images) / score_cpu,
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def measure_coreset(args: argparse.Namespace) -> list[dict]:
    """Approximate (projected) vs plain greedy coreset on the same PatchCore features."""
    import torch

    from detectors import create_detector
    from detectors.features import embed_images
    from detectors.models.patchcore import greedy_coreset, nearest
    from synth.data import load_category

    torch.set_num_threads(args.threads)
    category = load_category(args.data, args.category, size=args.size)
    images = category.train_images[:args.train] if args.train else category.train_images
    detector = create_detector("patchcore")
    features = embed_images(detector.embed, images, 8).reshape(-1, detector.dim)
    picks = max(1, int(len(features) * args.ratio))
    rows = []
    for label, projection in (("approximate (128-d projection)", 128), ("plain (full features)", None)):
        generator = torch.Generator().manual_seed(0)
        chosen, wall, cpu = _timed(greedy_coreset, features, picks, projection, 10, generator)
        radius = nearest(features, features[chosen])[0].max().item()
        rows.append(dict(method=label, features=len(features), dim=detector.dim, picks=picks, wall_s=wall,
                         cpu_s=cpu, ms_per_pick=1000 * wall / picks, coverage_radius=radius))
    return rows


def table(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        lines.append("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="dataset root (built-in categories have no test set)")
    parser.add_argument("--category", required=True)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--detectors", default="patchcore,simplenet")
    parser.add_argument("--settings", default="{}", help='JSON {"detector": {"key": value}} overrides')
    parser.add_argument("--train", type=int, default=0, help="use only the first N training images (0: all)")
    parser.add_argument("--test", type=int, default=0, help="score only the first N test images (0: all)")
    parser.add_argument("--ratio", type=float, default=0.1, help="coreset ratio for the coreset comparison")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--coreset-only", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one detector, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_detector(args.one, args)))
        return
    forwarded = [a for a in sys.argv[1:] if a != "--coreset-only"]
    if not args.coreset_only:
        rows = []
        for name in args.detectors.split(","):
            output = subprocess.run([sys.executable, __file__, *forwarded, "--one", name], check=True,
                                    capture_output=True, text=True).stdout
            rows.append(json.loads(output.strip().splitlines()[-1]))
        print(table(rows), "\n", flush=True)
    print(table(measure_coreset(args)))


if __name__ == "__main__":
    main()
