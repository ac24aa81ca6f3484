"""`synth train`: train the per-category (or class-conditional) DDPM that SDAS samples from."""

from __future__ import annotations

from pathlib import Path

import click

from synth.data import DEFAULT_CATEGORY
from synth.data.size import ImageSize, SizeParam
from synth.diffusion.losses import DEFAULT_LOSS, LOSSES
from synth.diffusion.presets import PRESETS


def _command_line() -> str:
    """The command as typed, local paths replaced by their role, for the model card."""
    from synth.cli import command_words
    from synth.pipeline.provenance import portable_command

    return portable_command(command_words())


@click.command("train")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Dataset root (MVTec AD, MPDD, BTAD, VisA or folder); omit for a built-in category.")
@click.option("--category", default=DEFAULT_CATEGORY, show_default=True,
              help="A category, a comma-separated list or 'all' (several -> one class-conditional model).")
@click.option("--layout", default=None, help="Dataset layout (detected when omitted).")
@click.option("--preset", default="tiny", show_default=True,
              help=f"Model size: {', '.join(PRESETS)} (micro: for tests).")
@click.option("--steps", type=int, default=1000, show_default=True, help="Training steps (total).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Model directory.")
@click.option("--batch-size", type=int, default=None, help="Global batch size (default: the preset's).")
@click.option("--lr", type=float, default=None, help="Learning rate (default: the preset's).")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
@click.option("--checkpoint-every", type=int, default=500, show_default=True)
@click.option("--sample-every", type=int, default=1000, show_default=True,
              help="Write a grid of s = 0 samples (EMA weights) to OUT/samples every K steps.")
@click.option("--sample-steps", type=int, default=50, show_default=True, help="Respaced steps of those samples.")
@click.option("--crops-from", type=SizeParam(), default=None, metavar="SIZE",
              help="Load the images at SIZE (a side or HEIGHTxWIDTH) and train on random preset-size crops of "
                   "them: a fully convolutional model that SDAS samples at native resolution, e.g. 256.")
@click.option("--hflip", is_flag=True, help="Random horizontal flips (off: many objects are not symmetric).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="auto = bf16 on a GPU with bf16 or a CPU with bf16 units (AMX / AVX512-BF16), else fp32.")
@click.option("--loss", type=click.Choice(LOSSES), default=DEFAULT_LOSS, show_default=True,
              help="offset: offset noise so the image mean is learned (colour casts); mean: an image-mean "
                   "loss term; paper: RealNet's plain hybrid loss.")
@click.option("--save-dtype", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
              help="Dtype of the saved weights (fp16 halves the size; sampling runs in fp32 or bf16 anyway).")
@click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads (default: torch's choice).")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.pt.")
@click.option("--overwrite", is_flag=True, help="Replace a different model or a finished run in OUT.")
def train(data: Path | None, category: str, layout: str | None, preset: str, steps: int, out: Path,
          batch_size: int | None, lr: float | None, seed: int, checkpoint_every: int, sample_every: int,
          sample_steps: int, crops_from: ImageSize | None, hflip: bool, precision: str, loss: str, save_dtype: str,
          threads: int | None, resume: bool, overwrite: bool) -> None:
    """Train a DDPM on the normal images of a category (for the SDAS generator)."""
    import torch

    from synth.diffusion.train import TrainOptions
    from synth.diffusion.train import train as run_training

    if threads:
        torch.set_num_threads(threads)
    config = run_training(TrainOptions(
        out=out, category=category, preset=preset, steps=steps, data=data, layout=layout,
        batch_size=batch_size, lr=lr, seed=seed, checkpoint_every=checkpoint_every,
        sample_every=sample_every, resume=resume, overwrite=overwrite, hflip=hflip, precision=precision,
        loss=loss, save_dtype=save_dtype, sample_steps=sample_steps, crops_from=crops_from,
        command=_command_line()))
    click.echo(f"model ({config.category}, {config.preset}, {config.steps} steps) saved in {out}")
