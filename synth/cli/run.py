"""`synth run`: train the missing models of a recipe and generate its datasets."""

from __future__ import annotations

from pathlib import Path

import click

from synth.cli import command_words
from synth.diffusion.models import models_root
from synth.pipeline.recipes import load_recipe, run_recipe


@click.command("run")
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option("--only", default=None, help="Comma-separated categories of the recipe to run.")
@click.option("--data", type=click.Path(path_type=Path), default=None, help="Data root [default: the recipe's].")
@click.option("--models", type=click.Path(path_type=Path), default=None,
              help="Models root [default: $SYNTH_MODELS or ./models].")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Datasets root [default: ./RECIPE_NAME].")
@click.option("--dry-run", is_flag=True, help="Say what would be trained and generated; do nothing.")
def command(recipe: Path, only: str | None, data: Path | None, models: Path | None, out: Path | None,
            dry_run: bool) -> None:
    """Run RECIPE: per category, train the DDPM if missing, then write its SDAS dataset (resumable)."""
    loaded = load_recipe(recipe)
    run_recipe(loaded, data, models_root(models), out or Path(loaded.name), only, dry_run,
               command_words(), echo=click.echo)
