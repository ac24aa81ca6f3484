"""RealNet trained on SDAS vs. DTD anomalies with a longer budget than the generator x detector matrix.

The matrix gives RealNet 40 optimiser steps (one epoch on bottle), which ranks generators under a
tiny budget. This script re-asks the paper's question (do SDAS anomalies train a better RealNet than
DTD-texture anomalies?) with ``--steps`` steps per fit, on the same shards (made if missing, under
the same --work as the matrix), and writes its own section of docs/benchmarks.md.

    python benchmarks/realnet_budget.py --work /tmp/synth-matrix --steps 200 --threads 1
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from matrix import (DATASETS, METRICS, NORMALS_PER_STEP, REPO, Runner, bench, count_normal, generate,
                    read_results, sdas_versus_dtd, write_section)

SECTION = "## RealNet: SDAS vs. DTD anomalies at a longer budget"
GENERATORS = ("draem", "sdas")


def markdown(results: dict, missing: dict, commands: list[str], steps: int, size: int, count: int) -> str:
    """The docs section: one row per (category, generator), all metrics and wall times, the verdict."""
    lines = [SECTION, "",
             f"RealNet alone, {steps} optimiser steps per fit (batch 16: {NORMALS_PER_STEP} normal + "
             f"{NORMALS_PER_STEP} anomalous images, rounded to whole epochs), {size} x {size} px, on the "
             f"matrix's {count}-row shards; checkpoints chosen on held-out synthetic rows. Produced by "
             f"`python benchmarks/realnet_budget.py --work DIR --steps {steps} --threads N`, which runs:", "", "```",
             *commands, "```", "",
             "| category | anomalies | " + " | ".join(title for _, title in METRICS) + " | fit (s, wall) | score (s, wall) |",
             "|---|---|" + "---|" * (len(METRICS) + 2)]
    for (category, generator), by_detector in results.items():
        result = by_detector["realnet"]
        values = " | ".join(f"{result['metrics'][key]:.4f}" for key, _ in METRICS)
        lines.append(f"| {category} | {generator} | {values} | {result['fit_seconds']:.0f} | "
                     f"{result['score_seconds']:.0f} |")
    for (category, generator), error in missing.items():
        lines.append(f"| {category} | {generator} | missing: {error} |" + " |" * (len(METRICS) + 1))
    return "\n".join(lines + ["", sdas_versus_dtd(results, missing), ""])


@click.command()
@click.option("--work", type=click.Path(path_type=Path), required=True, help="The matrix's work folder (resumable).")
@click.option("--steps", default=200, show_default=True, help="RealNet optimiser steps per fit.")
@click.option("--size", default=128, show_default=True, help="Image side (the matrix's shards are made at it).")
@click.option("-n", "count", default=500, show_default=True, help="Anomalies per generator.")
@click.option("--threads", default=1, show_default=True, help="torch threads of each `detectors bench`.")
@click.option("--sdas-model", "sdas_models", multiple=True, metavar="CATEGORY=DIR",
              help="SDAS diffusion model of a category (default: synth's discovery, ./models/CATEGORY).")
@click.option("--categories", default=",".join(DATASETS), show_default=True, help="Comma-separated categories.")
@click.option("--docs/--no-docs", default=True, help="Write this script's section of docs/benchmarks.md.")
@click.option("--collect-only", is_flag=True, help="Only read the results already under --work (no runs).")
def main(work: Path, steps: int, size: int, count: int, threads: int, sdas_models: tuple[str, ...],
         categories: str, docs: bool, collect_only: bool) -> None:
    """Run RealNet on the draem and sdas shards of each category and write the comparison."""
    models = dict(pair.split("=", 1) for pair in sdas_models if "=" in pair)
    chosen = [name.strip() for name in categories.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(DATASETS))
    if unknown:
        raise click.UsageError(f"unknown category {unknown[0]!r}; choose from {', '.join(DATASETS)}")
    work.mkdir(parents=True, exist_ok=True)
    run = Runner(work / "log.txt", collect_only)
    results: dict[tuple[str, str], dict] = {}
    missing: dict[tuple[str, str], str] = {}
    commands: list[str] = []
    for category in chosen:
        for generator in GENERATORS:
            shards, error = generate(run, work, category, generator, size, count, models.get(category))
            if error is None:
                out, error, command = bench(run, work, category, f"{generator}-realnet-{steps}", ["realnet"], shards,
                                            size, threads, count_normal(category), {"realnet": steps})
                commands.append(" ".join(command))
            if error is not None:
                missing[(category, generator)] = error
                click.echo(f"missing {category}/{generator}: {error}")
                continue
            results[(category, generator)] = read_results(out)
    section = markdown(results, missing, commands, steps, size, count)
    click.echo(section)
    if docs:
        write_section(REPO / "docs" / "benchmarks.md", section)


if __name__ == "__main__":
    sys.exit(main())
