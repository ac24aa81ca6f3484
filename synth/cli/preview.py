"""`synth preview`: a PNG contact sheet of a generator's samples."""

from __future__ import annotations

from pathlib import Path

import click

from synth.cli.options import data_options, generator_options, generator_settings
from synth.pipeline.preview import preview, save_png, strength_sweep
from synth.pipeline.strength import parse_strength_list


@click.command("preview")
@data_options
@generator_options
@click.option("-n", "count", type=click.IntRange(1), default=8, show_default=True, help="Number of samples.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
@click.option("--tile", type=click.IntRange(8), default=128, show_default=True, help="Tile side in the sheet.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="PNG path [default: preview-GENERATOR.png].")
@click.option("--overwrite", is_flag=True, help="Replace an existing PNG.")
def command(count: int, seed: int, tile: int, out: Path | None, overwrite: bool, **options) -> None:
    """Save a sheet: normal images, their anomalous versions, and the mask outlines.

    With ``--generator sdas --s 0,0.1,0.2`` (a comma list), the same seeds at each strength instead.
    """
    out = out or Path(f"preview-{options['generator']}.png")
    if out.suffix.lower() != ".png" or out.is_dir():
        raise click.UsageError(f"--out {out}: expected a .png file path")
    if out.exists() and not overwrite:
        raise click.UsageError(f"{out} exists; use --overwrite to replace it")
    sweep = options["generator"] == "sdas" and "," in (options.get("strength") or "")
    if sweep:
        strengths = parse_strength_list(options.pop("strength"))
        sheet = strength_sweep(generator_settings({**options, "strength": None}), options["data"],
                               options["category"], options["layout"], options["size"], strengths, count, seed, tile)
    else:
        sheet = preview(options["generator"], generator_settings(options), options["data"], options["category"],
                        options["layout"], options["size"], count, seed, tile)
    save_png(out, sheet)
    click.echo(f"wrote {out}")
