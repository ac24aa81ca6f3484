"""DDPM training speed and peak memory for each preset and precision on this machine.

Each (preset, precision) runs in its own process (so that the peak RSS is its own) and does the real
training step of ``synth train`` (hybrid loss, AdamW, clipping, EMA) on random images:

    python benchmarks/ddpm.py --presets tiny,small --precisions fp32,bf16 --steps 5 --threads 1
    python benchmarks/ddpm.py --presets paper --batch-size 1 --steps 2 --threads 1
    python benchmarks/ddpm.py --presets compact --precisions bf16 --crops-from 256 --steps 5 --threads 1

With --crops-from SIDE, each (preset, precision) is also timed on random preset-size crops of SIDE-px images
(``synth train --crops-from``), crops included in the step time. Prints a Markdown table: seconds per step,
steps/s, images/s and the peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(preset_name: str, precision: str, steps: int, batch_size: int | None, threads: int,
            crops_from: int | None = None) -> dict:
    """Time ``steps`` training steps (batch drawn, then the step) after one warm-up step, in this process."""
    import torch
    from accelerate import Accelerator
    from diffusers.training_utils import EMAModel

    from synth.diffusion.data import TrainingSet
    from synth.diffusion.model import build_unet
    from synth.diffusion.presets import get_preset
    from synth.diffusion.schedule import Schedule
    from synth.diffusion.train import EMA_DECAY, make_batch, training_step

    torch.set_num_threads(threads)
    preset = get_preset(preset_name)
    batch = batch_size or preset.batch_size
    accelerator = Accelerator(mixed_precision="bf16" if precision == "bf16" else "no")
    torch.manual_seed(0)
    unet = build_unet(preset.name)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=preset.lr, weight_decay=0.0)
    ema = EMAModel(unet.parameters(), decay=EMA_DECAY)
    unet, optimizer = accelerator.prepare(unet, optimizer)
    ema.to(accelerator.device)
    schedule = Schedule.linear().to(accelerator.device)
    side = crops_from or preset.size
    images = torch.randint(0, 256, (2 * batch, 3, side, side), dtype=torch.uint8)
    data = TrainingSet(images, torch.zeros(2 * batch, dtype=torch.long), ["random"])
    crop = preset.size if crops_from else None
    unet.train()
    timings = []
    for step in range(steps + 1):
        started = time.perf_counter()
        x0, _, index, noise = (v.to(accelerator.device) for v in make_batch(
            data, 0, step, batch, len(schedule), False, crop=crop))
        training_step(accelerator, unet, optimizer, ema, schedule, x0, None, index, noise).item()
        timings.append(time.perf_counter() - started)
    per_step = sum(timings[1:]) / steps
    return dict(preset=preset.name, size=preset.size, crops_from=crops_from, precision=precision, batch=batch,
                threads=threads,
                params_m=sum(p.numel() for p in unet.parameters()) / 1e6, s_per_step=per_step,
                steps_per_s=1 / per_step, images_per_s=batch / per_step,
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                device=str(accelerator.device))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,small")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after one warm-up step)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--crops-from", type=int, default=None,
                        help="also time training on preset-size crops of images of this side")
    parser.add_argument("--one", nargs=2, metavar=("PRESET", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one, args.steps, args.batch_size, args.threads, args.crops_from)))
        return
    print("| preset | size | crops from | params (M) | precision | batch | threads | s/step | steps/s | images/s | "
          "peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for preset in args.presets.split(","):
        for precision in args.precisions.split(","):
            for crops_from in [None, args.crops_from] if args.crops_from else [None]:
                print(row(preset, precision, crops_from, args), flush=True)


def row(preset: str, precision: str, crops_from: int | None, args: argparse.Namespace) -> str:
    """One table row, measured in a process of its own."""
    command = [sys.executable, __file__, "--one", preset, precision, "--steps", str(args.steps),
               "--threads", str(args.threads)]
    if args.batch_size:
        command += ["--batch-size", str(args.batch_size)]
    if crops_from:
        command += ["--crops-from", str(crops_from)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        return (f"| {preset} | | {crops_from or '-'} | | {precision} | | | failed: "
                f"{done.stderr.strip().splitlines()[-1]} | | | |")
    r = json.loads(done.stdout.strip().splitlines()[-1])
    return (f"| {r['preset']} | {r['size']} | {r['crops_from'] or '-'} | {r['params_m']:.1f} | {r['precision']} | "
            f"{r['batch']} | {r['threads']} | {r['s_per_step']:.3g} | {r['steps_per_s']:.3g} | "
            f"{r['images_per_s']:.3g} | {r['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
