"""SDAS sampling speed on this machine: precisions and layouts side by side, the sampler next to its
bare UNet calls, and diffusers' DDPMPipeline as a reference.

    python benchmarks/sdas.py --steps 20 --batch-size 16 --threads 1 --configs fp32,bf16,bf16-cl [--models DIR,DIR]

For each configuration (fp32 or bf16 autocast, "-cl" = channels-last weights and inputs) and number
of steps, prints images per CPU-second and per wall-second of (a) `SDASSampler.sample` (s = 0.15)
and (b) the same UNet calls alone on a fixed input (the floor any sampler pays), the sampler's
overhead over (b), and for fp32 (c) `diffusers.DDPMPipeline` with a learned-range `DDPMScheduler`.
CPU-seconds (process time) are what a loaded machine does not inflate. Defaults to the bundled
bottle model (else the first bundled model); several models (e.g. two presets) are timed side by side.
"""

from __future__ import annotations

import argparse
import time

import torch
from diffusers import DDPMPipeline, DDPMScheduler

from synth.diffusion.model import load_model
from synth.diffusion.models import bundled_models
from synth.diffusion.sampler import SDASSampler, image_generators


def best_of(repeats: int, run) -> tuple[float, float]:
    """(CPU-seconds, wall-seconds) of the fastest of ``repeats`` runs, after one warm-up run."""
    run()
    times = []
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        run()
        times.append((time.process_time() - cpu, time.perf_counter() - wall))
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None, help="comma-separated model directories [default: a bundled model]")
    parser.add_argument("--steps", default="20")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configs", default="fp32,bf16,bf16-cl")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bundled = bundled_models()
    model_dirs = args.models.split(",") if args.models else [str(bundled.get("bottle") or next(iter(bundled.values())))]
    print(f"batch {args.batch_size}, {args.threads} thread(s)\n")
    print("| model | config | steps | SDAS img/CPU-s | SDAS img/s | bare UNet img/CPU-s | sampler overhead (CPU) "
          "| DDPMPipeline img/CPU-s |")
    print("|---|---|---|---|---|---|---|---|")
    for model_dir in model_dirs:
        time_model(model_dir, args)


def time_model(model_dir: str, args: argparse.Namespace) -> None:
    """Print one table row per (configuration, steps) of the model in ``model_dir``."""
    unet, config = load_model(model_dir)
    batch = args.batch_size
    label = f"{model_dir.rstrip('/').split('/')[-1]} ({config.preset}, {config.size}px)"
    for name in args.configs.split(","):
        bf16, channels_last = name.startswith("bf16"), name.endswith("-cl")
        layout = torch.channels_last if channels_last else torch.contiguous_format
        unet.to(memory_format=layout)
        for steps in [int(s) for s in args.steps.split(",")]:
            sampler = SDASSampler(unet, steps, bf16=bf16, spacing="ddim")
            generators = image_generators(0, range(batch))
            strengths = torch.full((batch,), 0.15)
            sdas = best_of(args.repeats, lambda: sampler.sample(batch, strengths, generators))
            x = torch.randn(batch, 3, config.size, config.size).to(memory_format=layout)
            t = sampler.schedule.timesteps

            @torch.no_grad()
            def bare() -> None:
                for index in range(len(t) - 1, -1, -1):
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        unet(x, t[index].expand(batch))

            floor = best_of(args.repeats, bare)
            pipe = "–"
            if name == "fp32":
                scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear",
                                          variance_type="learned_range", clip_sample=True)
                pipeline = DDPMPipeline(unet=unet, scheduler=scheduler).to("cpu")
                pipeline.set_progress_bar_config(disable=True)
                timed = best_of(args.repeats, lambda: pipeline(
                    batch_size=batch, num_inference_steps=steps, generator=torch.Generator().manual_seed(0),
                    output_type="np"))
                pipe = f"{batch / timed[0]:.2f}"
            print(f"| {label} | {name} | {steps} | {batch / sdas[0]:.2f} | {batch / sdas[1]:.2f} | {batch / floor[0]:.2f} "
                  f"| {100 * (sdas[0] / floor[0] - 1):+.1f}% | {pipe} |", flush=True)
        unet.to(memory_format=torch.contiguous_format)


if __name__ == "__main__":
    main()
