"""Where a synthetic-trained detector's fit spends its time on this CPU, per precision.

    python benchmarks/fit_profile.py --size 256 --threads 1 [--profile]
    python benchmarks/fit_profile.py --fit realnet --anomalies SHARDS --data ../shared/data/mvtec --category bottle
    python benchmarks/fit_profile.py --size 256 --threads 1 --parts [--compile]

Prints (a) the backbone's milliseconds per image in fp32 and bf16 autocast and (b) one RealNet
optimiser step (batch 16, random cached-feature-shaped inputs, half the images with an anomalous
corner) in fp32 and bf16; with --profile (c) torch.profiler's top operators of a bf16 step. With
--parts, instead, a bf16 step split into its networks (the four reconstruction UNets; RRS and the
discriminator with the loss), the step at batch 8 and in channels-last layout (and compiled by
torch.compile with --compile, which takes minutes), and one validation (100 held-out images from
cached features) in fp32 and bf16. With --fit, cProfile's top entries of a one-epoch fit of that
detector on real data (feature caching, AFS / prototypes, steps, validation). CPU time (process
time) is what a loaded machine does not inflate.
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

    from detectors.data.training import training_set
    from synth.data import load_category

    data = training_set(load_category(args.data, args.category, size=args.size), [args.anomalies], 0.5)
    detector = create_detector(args.fit, epochs=1, val_every=1)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(detector.fit, data)
    print(f"{args.fit} one-epoch fit: {time.perf_counter() - start:.1f} s, {detector.training['steps']} steps")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


def random_batch(detector, size: int, batch: int) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """Cached-feature-shaped inputs, their targets, and masks with an anomalous corner on half the images."""
    features = [torch.randn(batch, c, size // s, size // s) for c, s in zip(detector.counts, detector.strides)]
    masks = torch.zeros(batch, 1, size, size)
    masks[: batch // 2, :, : size // 3, : size // 3] = 1.0
    return features, [f + 0.1 * torch.randn_like(f) for f in features], masks


def training_step(detector, loss_fn=None):
    """A function running one bf16 Adam step of ``detector`` on given (features, targets, masks)."""
    parameters = [p for module in detector.networks().values() for p in module.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=1e-3)
    loss_fn = loss_fn or detector.loss

    def step(features, targets, masks, bf16: bool = True) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(features, targets, masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return step


def step_parts(args: argparse.Namespace) -> None:
    """Where a bf16 RealNet step goes, what layout and batch changes buy, and what a validation costs."""
    import torch.nn.functional as F

    from detectors.training.loop import validate_cached

    size = args.size
    detector = create_detector("realnet")
    features, targets, masks = random_batch(detector, size, 16)
    step = training_step(detector)
    print(f"step, batch 16: {cpu_seconds(lambda: step(features, targets, masks), args.repeats):.2f} CPU-s")
    small = random_batch(detector, size, 8)
    print(f"step, batch 8: {cpu_seconds(lambda: step(*small), args.repeats):.2f} CPU-s")

    def unets() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = sum(g(f, torch.zeros(())).sample.float().square().mean() for g, f in zip(detector.recon, features))
        loss.backward()

    residuals = [torch.rand_like(f, requires_grad=True) for f in features]

    def segmentation() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(detector.rrs(residuals, (size, size)), masks[:, 0].long())
        loss.backward()

    print(f"  reconstruction UNets forward + backward: {cpu_seconds(unets, args.repeats):.2f} CPU-s")
    print(f"  RRS + discriminator + loss forward + backward: {cpu_seconds(segmentation, args.repeats):.2f} CPU-s")
    layout = create_detector("realnet")
    for module in layout.networks().values():
        module.to(memory_format=torch.channels_last)
    channels_last = [f.contiguous(memory_format=torch.channels_last) for f in features]
    step_cl = training_step(layout)
    print(f"step, channels-last: {cpu_seconds(lambda: step_cl(channels_last, targets, masks), args.repeats):.2f} CPU-s")
    if args.compile:
        compiled = create_detector("realnet")
        step_compiled = training_step(compiled, torch.compile(compiled.loss))
        started = time.perf_counter()
        step_compiled(features, targets, masks)
        print(f"step, torch.compile: first step (compilation) {time.perf_counter() - started:.0f} s, then "
              f"{cpu_seconds(lambda: step_compiled(features, targets, masks), args.repeats):.2f} CPU-s")
    detector._train_mode(False)
    held = [torch.randn(100, c, size // s, size // s).half() for c, s in zip(detector.counts, detector.strides)]
    held_masks = np.zeros((100, size, size), np.uint8)
    held_masks[:50, : size // 4, : size // 4] = 255
    for precision in ("fp32", "bf16"):  # validate_cached runs in the detector's training precision
        detector.config.precision = precision
        seconds = cpu_seconds(lambda: validate_cached(detector, held, held_masks), 1)
        print(f"validation of 100 images, {precision}: {seconds:.1f} CPU-s")


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
    parser.add_argument("--parts", action="store_true", help="split a RealNet step; layouts; validation cost")
    parser.add_argument("--compile", action="store_true", help="with --parts: also time a torch.compile'd step")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.fit:
        profile_fit(args)
        return
    if args.parts:
        step_parts(args)
        return
    images = np.random.default_rng(0).integers(0, 256, (8, args.size, args.size, 3), dtype=np.uint8)
    backbone = create_backbone()
    for bf16 in (False, True):
        backbone.bf16 = bf16
        seconds = cpu_seconds(lambda: backbone(images, (4, 8, 16, 32)), args.repeats)
        print(f"backbone {'bf16' if bf16 else 'fp32'}: {1000 * seconds / len(images):.1f} ms/image")
    detector = create_detector("realnet")
    features, targets, masks = random_batch(detector, args.size, 16)
    step = training_step(detector)
    for bf16 in (False, True):
        print(f"realnet step {'bf16' if bf16 else 'fp32'}: "
              f"{cpu_seconds(lambda: step(features, targets, masks, bf16), args.repeats):.2f} CPU-s "
              f"(batch 16, {args.size} px)")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            step(features, targets, masks)
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
