"""`synth export`: write a dataset as an MVTec AD-style folder or as images beside masks."""

from __future__ import annotations

from pathlib import Path

import click

from synth.shards.export import FORMATS, export_dataset


@click.command("export")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="mvtec", show_default=True,
              help="mvtec: CATEGORY/test/GENERATOR + ground_truth + train/good; folder: images/ beside masks/.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="New (or empty) folder to write.")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Dataset root of the category: its normal images become train/good (built-in categories need none).")
@click.option("--category", default=None, help="Category name in the export [default: the dataset's].")
def command(directory: Path, fmt: str, out: Path, data: Path | None, category: str | None) -> None:
    """Export the synth dataset in DIRECTORY to folders that MVTec AD readers and other tools open."""
    counts = export_dataset(directory, out, fmt, data, category)
    click.echo(f"exported {counts.anomalous} anomalous images ({counts.masks} masks), {counts.normal} untouched "
               f"and {counts.train} normal training images to {out} ({fmt} layout)")
