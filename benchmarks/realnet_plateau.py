"""How long a RealNet fit at 256 px takes to reach its validation plateau, per training configuration.

    python benchmarks/realnet_plateau.py --work runs/plateau --threads 2 --variants precision=bf16 precision=fp32
    python benchmarks/realnet_plateau.py --work runs/plateau --threads 2 --variants lr=1e-3 lr=2e-3
    python benchmarks/realnet_plateau.py --work runs/plateau --threads 2 --variants batch_size=8 --max-steps 2400
    python benchmarks/realnet_plateau.py --work runs/plateau --threads 2 --variants batch_size=8 --max-steps 2400 --val-every 1 --patience 3 --smoothing 3 --min-delta 0.005

Makes ``-n`` anomalies with ``synth gen`` (DRAEM by default; kept under --work), then for each
variant (RealNet settings KEY=VALUE, comma-separated, on top of the defaults) fits RealNet with
early stopping on held-out synthetic rows (validation every
``--val-every`` epochs, ``--patience`` validations without an improvement of the mean of the last
``--smoothing`` scores by more than ``--min-delta``, at most ``--max-steps`` optimiser steps) and prints, side by side: the step of the best validation and the step where training
stopped, the wall time to the best validation (fixed costs, i.e. feature selection and caching,
included) and to the stop, the seconds per optimiser step, and the test metrics with their bootstrap
intervals. Run it on a quiet machine: the wall times are the result.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import torch

if __name__ == "__main__":  # benchmarks/detectors.py would shadow the package: the repository root comes first
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from detectors import create_detector  # noqa: E402
from detectors.data.training import training_set  # noqa: E402
from detectors.evaluation.bench import TestSet, evaluate_on_test_set  # noqa: E402
from detectors.models.realnet import RealNetConfig  # noqa: E402
from synth.data import load_category  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def make_shards(args: argparse.Namespace) -> Path:
    out = args.work / f"{args.category}-{args.generator}-{args.size}"
    if not (out / "manifest.json").exists():
        command = [sys.executable, "-m", "synth", "gen", "--data", args.data, "--category", args.category,
                   "--size", str(args.size), "-g", args.generator, "-n", str(args.count), "--seed", "0",
                   "--out", str(out)]
        if args.generator in ("draem", "prn-hea"):
            command += ["--textures", args.textures]
        subprocess.run(command, check=True, cwd=REPO)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--data", default="../shared/data/mvtec")
    parser.add_argument("--textures", default="../shared/data/dtd")
    parser.add_argument("--category", default="bottle")
    parser.add_argument("--generator", default="draem")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("-n", "--count", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=["precision=bf16"],
                        help="RealNet settings per fit, e.g. precision=bf16,lr=2e-3")
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument("--val-every", type=int, default=2, help="epochs between validations")
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--smoothing", type=int, default=1, help="validations averaged by the plateau rule")
    parser.add_argument("--min-delta", type=float, default=0.0, help="smallest gain that counts as progress")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shards = make_shards(args)
    category = load_category(args.data, args.category, size=args.size)
    data = training_set(category, [shards], 0.5)
    test = TestSet.from_category(category, category.size)
    rows = []
    for variant in args.variants:
        settings = dict(pair.split("=", 1) for pair in variant.split(","))
        batch_size = int(settings.get("batch_size", RealNetConfig.batch_size))
        epochs = math.ceil(args.max_steps / data.num_batches(batch_size))
        detector = create_detector("realnet", **{"epochs": epochs, "val_every": args.val_every,
                                                 "patience": args.patience, "smoothing": args.smoothing,
                                                 "min_delta": args.min_delta, "seed": args.seed, **settings})
        started = time.perf_counter()
        detector.fit(data)
        fit_seconds = time.perf_counter() - started
        result, _ = evaluate_on_test_set(detector, test, fit_seconds, data)
        training = detector.training
        fixed = fit_seconds - training["seconds"]
        rows.append({"variant": variant, "fit_seconds": round(fit_seconds, 1),
                     "best_seconds": round(fixed + training["best_seconds"], 1),
                     "seconds_per_step": round(training["seconds"] / max(training["steps"], 1), 2),
                     "metrics": result.metrics, "intervals": result.intervals, "training": training})
        print(json.dumps(rows[-1]), flush=True)
    print(f"\nRealNet on {args.category} at {args.size} px, {len(data.anomalous)} {args.generator} anomalies, "
          f"{args.threads} thread(s); validation every {args.val_every} epochs, patience {args.patience} on the "
          f"mean of {args.smoothing} validation(s), min_delta {args.min_delta}, "
          f"cap {args.max_steps} steps rounded up to whole epochs\n")
    print("| variant | best step | stopped at | plateau reached (min) | fit (min) | s/step | image AUROC "
          "| pixel AUROC | AUPRO@0.3 | pixel AP |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        metrics, intervals, training = row["metrics"], row["intervals"], row["training"]
        stop = f"{training['steps']}" + ("" if training["stopped_early"] else " (cap)")
        print(f"| {row['variant']} | {training['best_step']} | {stop} | {row['best_seconds'] / 60:.1f} "
              f"| {row['fit_seconds'] / 60:.1f} | {row['seconds_per_step']:.2f} "
              f"| {metrics['image_auroc']:.3f} [{intervals['image_auroc'][0]:.3f}, {intervals['image_auroc'][1]:.3f}] "
              f"| {metrics['pixel_auroc']:.3f} [{intervals['pixel_auroc'][0]:.3f}, {intervals['pixel_auroc'][1]:.3f}] "
              f"| {metrics['aupro_0.3']:.3f} | {metrics['pixel_ap']:.3f} |")


if __name__ == "__main__":
    main()
