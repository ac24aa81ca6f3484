"""Colour-cast remedies compared on the same budget: micro (16 px) DDPMs trained from scratch.

Every remedy trains on the same images, timesteps and white noise (the same seed), so the only
difference is the loss. Per remedy and seed: the colour error of s = 0 samples against the real
images, the fraction inside the real images' range of mean colours (±3 grey levels), the per-scale
ε slopes (image mean and 2x2 blocks) at t = 100 and 500, and the final training MSE:

    python benchmarks/remedy.py --work /tmp/remedy --category brick --steps 1000 --seeds 0,1,2

Prints a Markdown table (mean ± std over seeds). Runs resume: a finished model is not retrained.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def measure(directory: Path, category: str, data: Path | None, samples: int) -> dict[str, float]:
    """Colour error and slopes of the model in ``directory``."""
    import torch

    from synth.data import load_category
    from synth.diffusion.model import load_model
    from synth.quality.score import RealImages, colour_error, epsilon_slopes, sample_model

    unet, config = load_model(directory)
    real_images = np.stack(load_category(data, category, None, config.size).train_images)
    real = RealImages(real_images, np.zeros((len(real_images), 1)))
    fake = sample_model(unet, config, category, 0.0, samples, 20, "ddim", False, seed=0)
    slopes = epsilon_slopes(unet, config, real, timesteps=(100, 500))
    losses = torch.load(directory / "checkpoint.pt", weights_only=True)["losses"]
    return {**colour_error(fake, real_images), "slope_mean_t100": slopes["100"]["mean"],
            "slope_mean_t500": slopes["500"]["mean"], "slope_2_t100": slopes["100"]["2"],
            "final_loss": float(np.mean(losses[-100:]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--category", default="brick")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--losses", default="paper,offset,mean")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from synth.diffusion.train import TrainOptions, train

    torch.set_num_threads(args.threads)
    rows: dict[str, list[dict[str, float]]] = {}
    for loss in args.losses.split(","):
        for seed in map(int, args.seeds.split(",")):
            out = args.work / f"{loss}-seed{seed}"
            if not (out / "diffusion_pytorch_model.safetensors").is_file():
                train(TrainOptions(out=out, category=args.category, data=args.data, preset="micro", steps=args.steps,
                                   seed=seed, loss=loss, checkpoint_every=args.steps, sample_every=args.steps,
                                   precision="fp32", resume=True, progress=False))
            rows.setdefault(loss, []).append(measure(out, args.category, args.data, args.samples))
            print(f"{loss} seed {seed}: {rows[loss][-1]}", flush=True)
    keys = ["colour_error", "inside_colour_range", "slope_mean_t100", "slope_mean_t500", "slope_2_t100",
            "final_loss"]
    print(f"\n{args.category}, micro preset (16 px), {args.steps} steps, seeds {args.seeds}, "
          f"{args.samples} samples at s = 0 (20 ddim steps); mean ± std over seeds\n")
    print("| loss | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for loss, results in rows.items():
        cells = [f"{np.mean([r[k] for r in results]):.3f} ± {np.std([r[k] for r in results]):.3f}" for k in keys]
        print(f"| {loss} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
