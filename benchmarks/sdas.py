"""SDAS sampling speed: the sampler next to its bare UNet calls and next to diffusers' DDPMPipeline.

    python benchmarks/sdas.py --steps 20,50 --batch-size 16 --threads 1 [--model DIR]

For each number of steps, prints images/s of (a) `SDASSampler.sample` (s = 0.15), (b) the same UNet
calls alone on a fixed input (the floor any sampler pays) and (c) `diffusers.DDPMPipeline` with a
learned-range `DDPMScheduler` at the same number of steps, plus the sampler's overhead over (b).
Defaults to the bundled demo model.
"""

from __future__ import annotations

import argparse
import time

import torch
from diffusers import DDPMPipeline, DDPMScheduler

from synth.diffusion.model import load_model
from synth.diffusion.models import bundled_models
from synth.diffusion.sampler import SDASSampler, image_generators


def best_of(repeats: int, run) -> float:
    """The fastest of ``repeats`` timed runs (seconds), after one warm-up run."""
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory [default: the bundled demo model]")
    parser.add_argument("--steps", default="20,50")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model_dir = args.model or next(iter(bundled_models().values()))
    unet, config = load_model(model_dir)
    batch = args.batch_size
    print(f"model {model_dir} ({config.preset}, {config.size}px), batch {batch}, {args.threads} thread(s)\n")
    print("| steps | SDAS sampler img/s | bare UNet calls img/s | sampler overhead | DDPMPipeline img/s |")
    print("|---|---|---|---|---|")
    for steps in [int(s) for s in args.steps.split(",")]:
        sampler = SDASSampler(unet, steps)
        generators = image_generators(0, range(batch))
        strengths = torch.full((batch,), 0.15)
        sdas = best_of(args.repeats, lambda: sampler.sample(batch, strengths, generators))
        x = torch.randn(batch, 3, config.size, config.size)
        t = sampler.schedule.timesteps

        @torch.no_grad()
        def bare() -> None:
            for index in range(len(t) - 1, -1, -1):
                unet(x, t[index].expand(batch))

        floor = best_of(args.repeats, bare)
        scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", variance_type="learned_range",
                                  clip_sample=True)
        pipeline = DDPMPipeline(unet=unet, scheduler=scheduler).to("cpu")
        pipeline.set_progress_bar_config(disable=True)
        pipe = best_of(args.repeats, lambda: pipeline(batch_size=batch, num_inference_steps=steps,
                                                      generator=torch.Generator().manual_seed(0), output_type="np"))
        print(f"| {steps} | {batch / sdas:.2f} | {batch / floor:.2f} | {100 * (sdas / floor - 1):+.1f}% "
              f"| {batch / pipe:.2f} |")


if __name__ == "__main__":
    main()
