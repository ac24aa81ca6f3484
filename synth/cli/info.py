"""`synth info`: what a dataset directory holds."""

from __future__ import annotations

import json
from pathlib import Path

import click

from synth.quality.info import dataset_info


@click.command("info")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(directory: Path, as_json: bool) -> None:
    """Summarise the synth dataset in DIRECTORY."""
    info = dataset_info(directory)
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    for key, value in info.items():
        if key != "columns":
            click.echo(f"{key:>14}: {value}")
    for name, values in info["columns"].items():
        click.echo(f"{name:>14}: {values}")
