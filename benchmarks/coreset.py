"""PatchCore's coreset selections side by side on a real category's features, and `detectors fit` end to end.

    python benchmarks/coreset.py --data ../shared/data/mvtec --category bottle --work runs/coreset

Embeds the training images with PatchCore's default features once (cached as a .npy under
``--work``, so reruns skip it), then runs each selection at ``--ratio`` in this process, one torch
thread, and prints per method: CPU seconds (``time.process_time``, which other jobs on the machine
do not inflate) and wall seconds of the selection, passes over the features, the coverage radius
it reports (largest distance of any patch to its nearest pick, float32, on its own projection),
the coverage radius on the full features (brute force; comparable across projection widths), and
PatchCore's image AUROC, pixel AUROC and AUPRO@0.3 on the category's test set with that memory
bank. ``greedy-exact`` is the former selection, ``greedy-fp32`` the same picks several per pass,
``greedy-fast`` the default (int8, several per pass); ``--widths`` adds ``greedy-fast`` at other
projection widths. Finally it runs ``detectors fit --detector patchcore`` in a subprocess and prints
its wall and CPU time with the load average. Prints Markdown; never asserts.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

# This folder holds detectors.py, which would shadow the package: the repository root comes first.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np  # noqa: E402
import torch  # noqa: E402


def train_features(args: argparse.Namespace) -> torch.Tensor:
    """PatchCore's patch features of the training images (N patches, dim), cached under --work."""
    from detectors import create_detector
    from detectors.features import embed_images
    from synth.data import load_category

    detector = create_detector("patchcore")
    path = Path(args.work) / f"{args.category}-{args.size}-{detector.config.backbone}-{detector.dim}d-train.npy"
    if path.exists():
        print(f"features: {path} (cached)")
        return torch.from_numpy(np.load(path))
    category = load_category(args.data, args.category, size=args.size)
    start = time.process_time()
    features = embed_images(detector.embed, category.train_images, detector.config.batch_size)
    features = features.reshape(-1, detector.dim)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, features.numpy())
    print(f"features: {len(category.train_images)} images -> {tuple(features.shape)} in "
          f"{time.process_time() - start:.1f} CPU-s, saved to {path}")
    return features


def test_metrics(bank: torch.Tensor, test) -> dict[str, float]:
    """PatchCore's metrics on the test set with ``bank`` as its memory bank."""
    from detectors import create_detector
    from detectors.evaluation.metrics import aupro, image_auroc, pixel_auroc

    detector = create_detector("patchcore")
    detector.memory_bank, detector.fitted = bank.contiguous(), True
    scores, maps = detector.score(test.images)
    return {"image AUROC": image_auroc(test.labels, scores), "pixel AUROC": pixel_auroc(test.masks, maps),
            "AUPRO@0.3": aupro(test.masks, maps)}


def full_radius(features: torch.Tensor, indices: torch.Tensor) -> float:
    from detectors.models.patchcore import nearest

    return float(nearest(features, features[indices])[0].max())


def compare_selections(args: argparse.Namespace, features: torch.Tensor) -> None:
    from detectors.evaluation.bench import TestSet
    from detectors.models.patchcore import select_coreset
    from synth.data import load_category

    category = load_category(args.data, args.category, size=args.size)
    test = TestSet.from_category(category, category.size)
    size = max(1, int(len(features) * args.ratio))
    runs = [("greedy-exact", 128), ("greedy-fp32", 128), ("greedy-fast", 128)]
    runs += [("greedy-fast", int(width)) for width in args.widths.split(",") if width and int(width) != 128]
    runs = [run for run in runs if run[0] in args.methods.split(",")]
    print(f"\n{args.category}: {len(features)} patches x {features.shape[1]}, {size} picks "
          f"({args.ratio:g}), {len(test.images)} test images, torch threads {torch.get_num_threads()}, "
          f"load average at start {os.getloadavg()[0]:.1f}\n")
    header = ("| method | projection | CPU (s) | wall (s) | passes | radius, reported (projected) "
              "| radius, full features | image AUROC | pixel AUROC | AUPRO@0.3 |")
    rows, selections = [], {}
    for method, width in runs:
        generator = torch.Generator().manual_seed(0)
        wall, cpu = time.perf_counter(), time.process_time()
        coreset = select_coreset(features, size, method, width, 10, generator)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        selections[(method, width)] = coreset.indices
        radius = full_radius(features, coreset.indices) if args.full_radius else float("nan")
        metrics = test_metrics(features[coreset.indices], test)
        rows.append(f"| {method} | {width} | {cpu:.1f} | {wall:.1f} | {coreset.passes} | {coreset.radius:.4f} "
                    f"| {radius:.4f} | " + " | ".join(f"{value:.4f}" for value in metrics.values()) + " |")
        print(rows[-1], flush=True)
    print("\n" + header + "\n|" + "---|" * 10)
    print("\n".join(rows))
    exact = selections.get(("greedy-exact", 128))
    if exact is not None:
        for key, indices in selections.items():
            shared = len(set(indices.tolist()) & set(exact.tolist()))
            print(f"{key[0]} ({key[1]}-d): {shared} of {size} picks shared with greedy-exact, "
                  f"same order: {torch.equal(indices, exact)}")


def time_fit(args: argparse.Namespace) -> None:
    """`detectors fit --detector patchcore` end to end in a subprocess: wall and CPU seconds, load average."""
    out = Path(args.work) / "fit-model"
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "detectors.cli", "--threads", str(args.fit_threads), "fit", "--detector",
               "patchcore", "--data", str(args.data), "--category", args.category, "--size", str(args.size),
               "--out", str(out), "--set", f"coreset_method={args.fit_method}"]
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith(("coreset:", "fitted"))]
    print(f"\n`{' '.join(command[1:])}` (exit {result.returncode}): {wall:.1f} s wall, {cpu:.1f} s CPU, "
          f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, {os.cpu_count()} CPUs")
    for line in lines:
        print("    " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--category", default="bottle")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--work", default="runs/coreset", help="features cache and the fitted model")
    parser.add_argument("--ratio", type=float, default=0.1)
    parser.add_argument("--methods", default="greedy-exact,greedy-fp32,greedy-fast")
    parser.add_argument("--widths", default="128,64", help="projection widths for greedy-fast")
    parser.add_argument("--no-full-radius", dest="full_radius", action="store_false",
                        help="skip the brute-force radius on the full features (about a CPU-minute per method)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fit-threads", type=int, default=2, help="torch threads of the timed `detectors fit`")
    parser.add_argument("--fit-method", default="greedy-fast", help="coreset_method of the timed `detectors fit`")
    parser.add_argument("--no-fit", dest="fit", action="store_false")
    parser.add_argument("--fit-only", action="store_true", help="only time `detectors fit`")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.fit_only:
        compare_selections(args, train_features(args))
    if args.fit or args.fit_only:
        time_fit(args)


if __name__ == "__main__":
    main()
