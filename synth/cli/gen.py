"""`synth gen`: write a synthetic anomaly dataset as Parquet shards."""

from __future__ import annotations

from pathlib import Path

import click

from synth.cli import command_words
from synth.cli.options import data_options, generator_options, generator_settings
from synth.pipeline import distributed
from synth.pipeline.plan import GenerationPlan, default_output_dir, run_plan


@click.command("gen")
@data_options
@generator_options
@click.option("-n", "num_samples", type=int, default=10000, show_default=True, help="Number of samples.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output directory [default: CATEGORY-GENERATOR].")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
@click.option("--shard-size", type=int, default=1000, show_default=True, help="Rows per Parquet shard.")
@click.option("--batch-size", type=int, default=16, show_default=True, help="Samples per generator call.")
@click.option("--num-processes", type=int, default=1, show_default=True, help="Worker processes.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out.")
@click.option("--overwrite", is_flag=True, help="Replace an existing dataset in --out.")
def command(num_samples: int, out: Path | None, seed: int, shard_size: int, batch_size: int,
            num_processes: int, resume: bool, overwrite: bool, **options) -> None:
    """Generate N anomalous images with masks from a category's normal images."""
    settings = generator_settings(options)
    plan = GenerationPlan(
        generator=options["generator"], category=options["category"], data=options["data"],
        layout=options["layout"], size=options["size"], num_samples=num_samples,
        out=out or default_output_dir(options["category"], options["generator"]), seed=seed,
        shard_size=shard_size, batch_size=batch_size, settings=settings, resume=resume,
        overwrite=overwrite, command=command_words(),
    )
    out_dir = run_plan(plan, num_processes=num_processes)
    if distributed.world()[0] == 0:
        click.echo(f"wrote {num_samples} samples to {out_dir}")
