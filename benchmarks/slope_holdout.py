"""What the image-mean ε slope at small t measures: training vs held-out normal images, and what it costs in colour.

    python benchmarks/slope_holdout.py MODEL --category bottle --data ../shared/data/mvtec [--repeats 8]

For each timestep t prints, on the model's training images and on the held-out normal test images
(``test/good``), the least-squares slope of the image-mean of the predicted ε on the true one (as
`synth score`, averaged over ``--repeats`` noise draws, with the spread over draws), and two references:

- ``unpredictable``: the best slope of a denoiser that knows each image except its mean colour,
  which it takes as the data's average: (1 − ᾱ)/N / ((1 − ᾱ)/N + ᾱ·v), N = pixels per channel, v = the
  variance of the training images' per-channel mean (in [−1, 1] units). A model above it on held-out
  images predicts the mean colour from the content; one far above it only on training images remembers them.
- ``grey``: the colour error the slope deficit leaves in the predicted x0 at that t, in grey levels:
  sqrt((1 − ᾱ)/ᾱ) · |1 − slope| · std(mean of ε) · 127.5, std(mean of ε) = 1/sqrt(N). It is what
  the step leaves in the final colour only where few steps remain to correct it (small t).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from synth.data import load_category
from synth.diffusion.model import load_model
from synth.diffusion.schedule import Schedule
from synth.quality.score import RealImages, epsilon_slopes

TIMESTEPS = (50, 100, 300, 500, 999)


def mean_slopes(unet: torch.nn.Module, config, images: np.ndarray, repeats: int) -> dict[int, tuple[float, float]]:
    """(mean, std over noise draws) of the image-mean slope per timestep."""
    real = RealImages(images, np.zeros((len(images), 1)))
    draws = [epsilon_slopes(unet, config, real, TIMESTEPS, seed=seed, draws=1) for seed in range(repeats)]
    return {t: (float(np.mean([d[str(t)]["mean"] for d in draws])), float(np.std([d[str(t)]["mean"] for d in draws])))
            for t in TIMESTEPS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--category", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    unet, config = load_model(args.model)
    category = load_category(args.data, args.category, None, config.size)
    train = np.stack(category.train_images)[:32]
    held_out = np.stack([item.load(config.size)[0] for item in category.test if item.label == 0][:32])
    pixels = config.size * config.size
    means = np.stack(category.train_images).reshape(len(category), -1, 3).astype(np.float64).mean(1) / 127.5 - 1.0
    variance = float(means.var(axis=0).mean())
    schedule = Schedule.linear(config.num_train_timesteps)
    on_train = mean_slopes(unet, config, train, args.repeats)
    on_held_out = mean_slopes(unet, config, held_out, args.repeats)
    print(f"{args.category}: {len(train)} training / {len(held_out)} held-out normal images, "
          f"per-channel mean colour std {math.sqrt(variance) * 127.5:.2f} grey levels")
    print("| t | slope, training images | slope, held-out | unpredictable | grey (held-out) |")
    print("|---|---|---|---|---|")
    for t in TIMESTEPS:
        alpha = float(schedule.alphas_cumprod[t])
        noise = (1 - alpha) / pixels
        unpredictable = noise / (noise + alpha * variance)
        grey = math.sqrt((1 - alpha) / alpha) * abs(1 - on_held_out[t][0]) / math.sqrt(pixels) * 127.5
        print(f"| {t} | {on_train[t][0]:.2f} ± {on_train[t][1]:.2f} | {on_held_out[t][0]:.2f} ± {on_held_out[t][1]:.2f}"
              f" | {unpredictable:.2f} | {grey:.2f} |")


if __name__ == "__main__":
    main()
