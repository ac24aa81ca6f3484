"""`synth score`: how real a model's samples or a dataset's images look (colour, KID, diversity, ε slopes)."""

from __future__ import annotations

from pathlib import Path

import click

from synth.diffusion.schedule import DEFAULT_SPACING, SPACINGS


@click.command("score")
@click.argument("target")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Dataset root of the real normal images (omit for a built-in category).")
@click.option("--category", default=None, help="Category [default: the model's or dataset's].")
@click.option("--layout", default=None, help="Dataset layout (detected when omitted).")
@click.option("--s", "strengths", default="0,0.1,0.2", show_default=True, help="Model: strengths to sample.")
@click.option("-n", "count", type=click.IntRange(min=4), default=100, show_default=True,
              help="Samples per strength (model) or rows read (dataset).")
@click.option("--steps", type=click.IntRange(min=1), default=20, show_default=True, help="Model: sampling steps.")
@click.option("--spacing", type=click.Choice(SPACINGS), default=DEFAULT_SPACING, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Directory for score.json and score.md [default: scores/<name>].")
@click.option("--overwrite", is_flag=True, help="Replace an existing score in --out.")
def command(target: str, data: Path | None, category: str | None, layout: str | None, strengths: str, count: int,
            steps: int, spacing: str, seed: int, out: Path | None, overwrite: bool) -> None:
    """Score TARGET, a synth dataset directory or a diffusion model (directory, Hub id or bundled category)."""
    from synth.pipeline.strength import parse_strength_list
    from synth.quality.score import check_report_dir, is_dataset, score_dataset, score_model, write_report
    from synth.safety.locking import output_lock

    values = parse_strength_list(strengths)
    out = out or Path("scores") / Path(target).name
    with output_lock(out):  # an unwritable --out is refused before the work
        check_report_dir(out, overwrite)
        if is_dataset(Path(target)):
            report = score_dataset(Path(target), category, data, layout, count)
        else:
            report = score_model(target, category, data, layout, values, count, steps, spacing, seed)
        json_path, markdown_path = write_report(report, out, overwrite)
    click.echo(markdown_path.read_text())
    click.echo(f"written: {json_path}, {markdown_path}")
