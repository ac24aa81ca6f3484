"""Cost of the SDAS variants: images per CPU-second of the generator's `generate_batch`, blended,
for the plain blend, the image-conditioned start (`t0`) and the aligned mask (which samples every
image twice: with s and with its s = 0 twin), on the bundled model of a category.

    python benchmarks/sdas_variants.py --data ../shared/data/mvtec --category bottle --t0 400 --threads 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from synth.data import load_category
from synth.generators import GeneratorSettings, create_generator
from synth.pipeline.rng import per_sample_rng

VARIANTS = {"plain": {}, "t0": {"t0": None}, "aligned": {"mask": "aligned"}, "t0 + aligned": {"t0": None, "mask": "aligned"}}


def cpu_seconds(run, repeats: int) -> float:
    """CPU-seconds of the fastest of ``repeats`` runs after one warm-up (process time: load does not inflate it)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--category", default="bottle")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--t0", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    normals = load_category(args.data, args.category, size=args.size).train_images[:args.batch_size]
    rngs = lambda: [per_sample_rng(0, i) for i in range(len(normals))]  # noqa: E731 - fresh draws per run
    print(f"{args.category}, {args.size} px, batch {len(normals)}, {args.threads} thread(s), t0 = {args.t0}\n")
    print("| variant | img/CPU-s | CPU cost vs plain |")
    print("|---|---|---|")
    plain = None
    for name, options in VARIANTS.items():
        extra = {"blend": True, **{key: args.t0 if value is None else value for key, value in options.items()}}
        settings = GeneratorSettings(category=args.category, size=args.size, extra=extra)
        generator = create_generator("sdas", settings)
        seconds = cpu_seconds(lambda: generator.generate_batch(normals, rngs()), args.repeats)
        plain = plain or seconds
        print(f"| {name} | {len(normals) / seconds:.2f} | {seconds / plain:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
