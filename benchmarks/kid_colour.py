"""Does KID see colour casts? KID of a model's s = 0 samples as sampled, with each sample's colour
offset removed, and with a colour cast added.

    python benchmarks/kid_colour.py MODEL --category bottle --data ../shared/data/mvtec [--cast 9]

Removing the offset shifts each sample's mean RGB onto the nearest real image's; the cast adds
±CAST grey levels per image and channel (random signs). Prints colour error and KID (mean ± std over
subsets, the figures of `synth score`) for each.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from synth.diffusion.model import load_model
from synth.quality.score import FeatureExtractor, colour_error, kid, load_real, mean_colours, sample_model


def shifted(images: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``images`` (N, H, W, 3) uint8 with ``offsets`` (N, 3) grey levels added, clipped."""
    return np.clip(images.astype(np.float64) + offsets[:, None, None, :], 0, 255).round().astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--category", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("-n", type=int, default=100)
    parser.add_argument("--cast", type=float, default=9.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    unet, config = load_model(args.model)
    extractor = FeatureExtractor()
    real = load_real(args.data, args.category, config.size, None, extractor)
    samples = sample_model(unet, config, args.category, 0.0, args.n, 20, "ddim", True, 0)
    means, real_means = mean_colours(samples), real.mean_colours
    nearest = real_means[((means[:, None] - real_means[None]) ** 2).sum(-1).argmin(1)]
    signs = np.random.default_rng(0).choice([-1.0, 1.0], size=(len(samples), 3))
    variants = {"as sampled": samples, "colour offset removed": shifted(samples, nearest - means),
                f"±{args.cast:g} grey-level cast added": shifted(samples, args.cast * signs)}
    print("| samples | colour error | KID |\n|---|---|---|")
    for name, images in variants.items():
        mean, std = kid(extractor(images), real.features)
        print(f"| {name} | {colour_error(images, real.images)['colour_error']:.2f} | {mean:.1f} ± {std:.1f} |")


if __name__ == "__main__":
    main()
