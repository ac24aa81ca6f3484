"""Where a synthetic-trained detector's fit spends its time on this CPU, per precision.

    python benchmarks/fit_profile.py --size 256 --threads 1 [--profile]
    python benchmarks/fit_profile.py --fit realnet --anomalies SHARDS --data ../shared/data/mvtec --category bottle

Prints (a) the backbone's milliseconds per image in fp32 and bf16 autocast and (b) one RealNet
optimiser step (batch 16, random cached-feature-shaped inputs, half the images with an anomalous
corner) in fp32 and bf16; with --profile (c) torch.profiler's top operators of a bf16 step. With
--fit, instead, cProfile's top entries of a one-epoch fit of that detector on real data (feature
caching, AFS / prototypes, steps, validation). CPU time (process time) is what a loaded machine
does not inflate.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

if __name__ == "__main__":  # benchmarks/detectors.py would shadow the package: the repository root comes first
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from detectors import create_detector  # noqa: E402
from synth.backbones import create_backbone  # noqa: E402


def cpu_seconds(run, repeats: int) -> float:
    """Mean process time of ``run`` over ``repeats`` calls, after one warm-up call."""
    run()
    start = time.process_time()
    for _ in range(repeats):
        run()
    return (time.process_time() - start) / repeats


def profile_fit(args: argparse.Namespace) -> None:
    """cProfile of a one-epoch fit (validation included) on the category's normal images + ``--anomalies``."""
    import cProfile
    import pstats

    from detectors.data import training_set
    from synth.data import load_category

    data = training_set(load_category(args.data, args.category, size=args.size), [args.anomalies], 0.5)
    detector = create_detector(args.fit, epochs=1, val_every=1)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(detector.fit, data)
    print(f"{args.fit} one-epoch fit: {time.perf_counter() - start:.1f} s, {detector.training['steps']} steps")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", choices=("realnet", "prn"), help="profile a one-epoch fit of this detector")
    parser.add_argument("--anomalies", help="synth shards for --fit")
    parser.add_argument("--data", default="../shared/data/mvtec")
    parser.add_argument("--category", default="bottle")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.fit:
        profile_fit(args)
        return
    images = np.random.default_rng(0).integers(0, 256, (8, args.size, args.size, 3), dtype=np.uint8)
    backbone = create_backbone()
    for bf16 in (False, True):
        backbone.bf16 = bf16
        seconds = cpu_seconds(lambda: backbone(images, (4, 8, 16, 32)), args.repeats)
        print(f"backbone {'bf16' if bf16 else 'fp32'}: {1000 * seconds / len(images):.1f} ms/image")
    detector = create_detector("realnet")
    size, batch = args.size, 16
    features = [torch.randn(batch, c, size // s, size // s) for c, s in zip(detector.counts, detector.strides)]
    targets = [f + 0.1 * torch.randn_like(f) for f in features]
    masks = torch.zeros(batch, 1, size, size)
    masks[: batch // 2, :, : size // 3, : size // 3] = 1.0
    parameters = [p for module in detector.networks().values() for p in module.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=1e-3)

    def step(bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = detector.loss(features, targets, masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for bf16 in (False, True):
        print(f"realnet step {'bf16' if bf16 else 'fp32'}: "
              f"{cpu_seconds(lambda: step(bf16), args.repeats):.2f} CPU-s (batch {batch}, {size} px)")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            step(True)
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
