"""The report a person reads in a minute: DIR/report.md and DIR/report.json (the same numbers).

Per category: one row per cell (PatchCore first, then generator x detector) with the mean ± sample
standard deviation over seeds of image AUROC, pixel AUROC, AUPRO@0.3 and pixel AP; the seed-averaged
image AUROC difference to PatchCore with its two-level bootstrap interval and a verdict; steps, fit and
score times; then the recommended cell and the plots. Nothing in either file names a machine path.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from detectors.evaluation.bench import METRIC_COLUMNS
from detectors.matrix.engine import REFERENCE, Group, Matrix
from detectors.matrix.plots import write_plots
from detectors.matrix.results import collect, generation_seconds
from detectors.matrix.stats import Difference, best_cell, difference, mean_interval, mean_of, mean_std, spread, steps, \
    values_of
from synth.pipeline.provenance import portable_value

METRICS = ("image_auroc", "pixel_auroc", "aupro_0.3", "pixel_ap")
REPORT, REPORT_JSON = "report.md", "report.json"
VERDICTS = {1: "better than PatchCore", -1: "worse than PatchCore", 0: "no difference shown"}


def row_summary(generator: str | None, detector: str, results: Sequence[dict]) -> dict[str, Any]:
    """One cell over its seeds: metrics (mean, std, per seed), averaged intervals, steps and times."""
    metrics = {}
    for key in METRICS:
        values = values_of(results, key)
        mean, std = mean_std(values) if values else (None, None)
        metrics[key] = {"mean": mean, "std": std, "seeds": values, "interval": mean_interval(results, key)}
    return {"generator": generator, "detector": detector, "seeds": len(results), "metrics": metrics,
            "steps": steps(results), "fit_seconds": mean_of(results, "fit_seconds"),
            "score_seconds": mean_of(results, "score_seconds")}


def versus(found: Difference | str) -> dict[str, Any]:
    """A difference to PatchCore as the report keeps it."""
    if isinstance(found, str):
        return {"verdict": f"not determined ({found})"}
    return {"difference": found.estimate, "interval": [found.low, found.high], "verdict": VERDICTS[found.sign]}


def shown(against: dict[str, Any]) -> str:
    """A difference and its interval as text: ``+0.012 [-0.004, +0.030]``; "–" without one."""
    if "difference" not in against:
        return "–"
    return f"{against['difference']:+.3f} [{against['interval'][0]:+.3f}, {against['interval'][1]:+.3f}]"


def advice(cell: dict[str, Any]) -> str:
    """What the recommended cell means against PatchCore, in words."""
    against = cell["vs_patchcore"]
    if "difference" not in against:
        return f"Its difference to PatchCore is {against['verdict']}."
    return {"better than PatchCore": f"It is shown better than PatchCore (image AUROC {shown(against)}).",
            "worse than PatchCore": f"PatchCore, which needs no anomalies, is shown better ({shown(against)}): "
                                    "use PatchCore.",
            "no difference shown": f"It is not shown better than PatchCore ({shown(against)}): PatchCore, which "
                                   "needs no anomalies, is as good on this test set."}[against["verdict"]]


def category_summary(matrix: Matrix, category: str, groups: dict[Group, list[dict]],
                     missing: dict[Group, str], plots: dict[str, str]) -> dict[str, Any]:
    """Everything the report says about one category."""
    reference = groups.get((category, None, REFERENCE), [])
    cells = []
    for generator in matrix.rows:
        for detector in matrix.detectors:
            results = groups.get((category, generator, detector), [])
            if results:
                cells.append({**row_summary(generator, detector, results),
                              "vs_patchcore": versus(difference(results, reference))})
    best = best_cell(category, groups)
    recommended = next((cell for cell in cells if (cell["generator"], cell["detector"]) == best), None)
    return {"category": category,
            "reference": row_summary(None, REFERENCE, reference) if reference else None,
            "cells": cells,
            "recommended": {**recommended, "advice": advice(recommended)} if recommended else None,
            "generation_seconds": {row: generation_seconds(matrix, category, row) for row in matrix.generators},
            "missing": {f"{g or 'normal only'}/{d}": reason for (c, g, d), reason in missing.items() if c == category},
            "plots": plots}


def generator_spec(arguments: Sequence[str]) -> str:
    """`synth gen` generator arguments as the report names them (without the --textures folder)."""
    words = list(arguments)
    if "--textures" in words:
        del words[words.index("--textures"):words.index("--textures") + 2]
    return " ".join(words)


def settings(matrix: Matrix) -> dict[str, Any]:
    """The matrix's settings as the report states them."""
    return {"size": str(matrix.size), "anomalies_per_set": matrix.count, "seeds": matrix.seeds,
            "detectors": list(matrix.detectors),
            "generators": {name: generator_spec(args) for name, args in matrix.generators.items()},
            "existing_sets": list(matrix.anomalies), "tile": str(matrix.tile) if matrix.tile else None,
            "tile_stride": str(matrix.tile_stride) if matrix.tile_stride else None,
            "threads": matrix.threads, "settings": matrix.overrides}


def number(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def table(summary: dict[str, Any]) -> list[str]:
    """The category's cells as a markdown table, PatchCore first."""
    header = ["generator", "detector", "seeds", *(METRIC_COLUMNS[key] for key in METRICS),
              "vs PatchCore (image AUROC, 95 %)", "verdict", "steps", "fit (s)", "score (s)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows = ([summary["reference"]] if summary["reference"] else []) + summary["cells"]
    for row in rows:
        against = row.get("vs_patchcore")
        metrics = [spread(row["metrics"][key]["seeds"]) for key in METRICS]
        cells = [row["generator"] or "normal only", row["detector"], str(row["seeds"]), *metrics,
                 "reference" if against is None else shown(against),
                 "" if against is None else against["verdict"], row["steps"], number(row["fit_seconds"]),
                 number(row["score_seconds"], 1)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def category_markdown(summary: dict[str, Any]) -> list[str]:
    """One category: the recommended cell, the table, generation times, what is missing, the plots."""
    lines = [f"## {summary['category']}", ""]
    best = summary["recommended"]
    if best:
        lines += [f"**Recommended: {best['detector']} trained on {best['generator']}** (image AUROC "
                  f"{spread(best['metrics']['image_auroc']['seeds'])}, pixel AUROC "
                  f"{spread(best['metrics']['pixel_auroc']['seeds'])}; the highest seed-mean image AUROC, picked on "
                  f"these test images, which favours it). {best['advice']}", ""]
    lines += [*table(summary), ""]
    times = [f"{row} {number(seconds)}" for row, seconds in summary["generation_seconds"].items()]
    if times:
        lines += [f"Generation (`synth gen`, s, mean over seeds): {', '.join(times)}.", ""]
    if summary["missing"]:
        lines += ["Missing: " + "; ".join(f"{cell} ({reason})" for cell, reason in summary["missing"].items()) + ".",
                  ""]
    titles = {"auroc": "image and pixel AUROC per cell",
              "sheet": "anomalies of each generator and maps on real defects"}
    return lines + [f"![{titles[kind]}]({name})\n" for kind, name in summary["plots"].items()]


def markdown(matrix: Matrix, summaries: Sequence[dict[str, Any]]) -> str:
    """report.md: what was run and how to read it, then each category."""
    facts = settings(matrix)
    rows = "; ".join(f"`{name}` = `{spec}`" for name, spec in facts["generators"].items())
    lines = ["# Generator x detector matrix", "",
             f"Each detector trained on {matrix.count} synthetic anomalies per generator and seed at "
             f"{matrix.size.height} x {matrix.size.width} px, {matrix.seeds} seed(s) (seed S: `synth gen --seed S` "
             "and the detector's seed S), each until its validation on held-out synthetic rows plateaus or its cap "
             "(the steps column); "
             "PatchCore (normal images only) is the reference. Cells: mean ± sample standard deviation over the "
             "seeds. vs PatchCore: the seed-averaged image AUROC difference with its 95 % interval from a "
             "two-level bootstrap (test images, then each side's seeds; 1,000 resamples); a verdict only when the "
             f"interval excludes 0. Generators: {rows or 'none'}"
             + (f"; existing sets: {', '.join(matrix.anomalies)}" if matrix.anomalies else "") + ".", ""]
    for summary in summaries:
        lines += category_markdown(summary)
    return "\n".join(lines).rstrip() + "\n"


def write_report(matrix: Matrix) -> dict[str, Any]:
    """The plots, DIR/report.md and DIR/report.json from the finished cells; the JSON document."""
    groups, missing = collect(matrix)
    plots = write_plots(matrix, groups)
    summaries = [category_summary(matrix, category, groups, missing, plots.get(category, {}))
                 for category in matrix.categories]
    document = portable_value({"settings": settings(matrix), "categories": summaries}, {})
    (matrix.work / REPORT).write_text(markdown(matrix, document["categories"]))
    (matrix.work / REPORT_JSON).write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    return document
