"""What one SDAS UNet call costs on this CPU: torch.profiler's top operators and the variants tried.

    python benchmarks/unet_profile.py --batch-size 16 --threads 1 [--model DIR]
    python benchmarks/unet_profile.py --threads 1 --shapes tiny compact compact@16,8
    python benchmarks/unet_profile.py --threads 1 --shapes compact --sizes 64 256   # a crop-trained model

Prints the top operators of a bf16-autocast, channels-last call (the sampler's default on CPUs with
bf16 units) and the milliseconds per call of: that default, the whole model cast to bf16, and
`torch.jit.trace` + `freeze` + `optimize_for_inference`. Set ONEDNN_VERBOSE=1 to see which oneDNN
kernels (avx512_core_bf16, amx) the convolutions use.

With --shapes, times randomly initialised UNets of presets instead, interleaved so that a loaded
machine slows them alike (weights do not change the cost); `PRESET@A,B` is the preset with
self-attention at sides A and B instead of its own. --sizes times each at those image sides instead of
its preset's (the UNet is fully convolutional: a crop-trained model samples at any multiple of 8).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time

import torch
from diffusers import UNet2DModel
from torch.profiler import ProfilerActivity, profile

from synth.diffusion.model import load_model
from synth.diffusion.models import bundled_models
from synth.diffusion.presets import get_preset


class Denoiser(torch.nn.Module):
    """The UNet as a module returning a plain tensor (what torch.jit.trace + freeze need)."""

    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, return_dict=False)[0]


def milliseconds(run, repeats: int) -> float:
    """Mean process time per call in ms, after two warm-up calls."""
    with torch.no_grad():
        run()
        run()
        start = time.process_time()
        for _ in range(repeats):
            run()
    return 1000 * (time.process_time() - start) / repeats


def shape_unet(spec: str) -> UNet2DModel:
    """A randomly initialised UNet for ``PRESET`` or ``PRESET@A,B`` (attention at sides A, B)."""
    name, _, sides = spec.partition("@")
    preset = get_preset(name)
    if sides:
        preset = dataclasses.replace(preset, attention_resolutions=tuple(int(side) for side in sides.split(",")))
    return UNet2DModel(**preset.unet_kwargs()).eval().to(memory_format=torch.channels_last)


def compare_shapes(specs: list[str], batch_size: int, repeats: int, sizes: list[int] | None = None,
                   sampling_steps: int = 20) -> None:
    """Print ms per bf16-autocast call of each shape at each size (default: the first preset's), best of
    ``repeats`` interleaved rounds, and the UNet seconds per image sampled with ``sampling_steps`` steps."""
    unets = {spec: shape_unet(spec) for spec in specs}
    sizes = sizes or [get_preset(specs[0].partition("@")[0]).size]
    inputs = {size: torch.randn(batch_size, 3, size, size).to(memory_format=torch.channels_last) for size in sizes}
    t = torch.full((batch_size,), 500)
    runs = [(spec, size) for spec in specs for size in sizes]
    best = dict.fromkeys(runs, float("inf"))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for spec, size in runs:
            unets[spec](inputs[size], t)
        for _ in range(repeats):
            for spec, size in runs:
                start = time.process_time()
                unets[spec](inputs[size], t)
                best[spec, size] = min(best[spec, size], 1000 * (time.process_time() - start))
    first = best[runs[0]]
    print(f"batch {batch_size}\n\n| shape | size | params (M) | ms per call | ms per image per call | "
          f"s per image ({sampling_steps} steps) | speed vs {runs[0][0]} at {runs[0][1]} |")
    print("|---|---|---|---|---|---|---|")
    for (spec, size), ms in best.items():
        params = sum(p.numel() for p in unets[spec].parameters()) / 1e6
        print(f"| {spec} | {size} | {params:.1f} | {ms:.0f} | {ms / batch_size:.1f} | "
              f"{ms / batch_size * sampling_steps / 1000:.2f} | {first / ms:.3g}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory [default: the bundled bottle model]")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shapes", nargs="+", default=None, help="compare presets instead, e.g. tiny compact@16,8")
    parser.add_argument("--sizes", nargs="+", type=int, default=None,
                        help="with --shapes: image sides to time them at [default: the first preset's size]")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.shapes:
        compare_shapes(args.shapes, args.batch_size, args.repeats, args.sizes)
        return
    unet, config = load_model(args.model or bundled_models()["bottle"])
    unet.requires_grad_(False)
    x = torch.randn(args.batch_size, 3, config.size, config.size).to(memory_format=torch.channels_last)
    t = torch.full((args.batch_size,), 500)

    def autocast() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return unet(x, t, return_dict=False)[0]

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as profiler:
        autocast()
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))
    whole = copy.deepcopy(unet).to(torch.bfloat16)
    x_bf16 = x.to(torch.bfloat16)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
        traced = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(
            Denoiser(unet).eval(), (x, t), check_trace=False)))

    def jit() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
            return traced(x, t)

    variants = {"bf16 autocast, channels-last (default)": autocast,
                "whole model in bf16": lambda: whole(x_bf16, t, return_dict=False)[0], "jit trace + freeze": jit}
    print(f"batch {args.batch_size}, {config.size} px, {args.threads} thread(s)\n\n| variant | ms per call |\n|---|---|")
    for name, run in variants.items():
        print(f"| {name} | {milliseconds(run, args.repeats):.0f} |")


if __name__ == "__main__":
    main()
