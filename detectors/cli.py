"""The ``detectors`` command: fit, eval, bench and matrix of anomaly detectors (parsing only; the work is elsewhere)."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import click
import numpy as np
import torch

from detectors.base import DETECTORS, DetectorConfig, create_detector, get_detector_class, load_detector
from synth.backbones import BACKBONES
from detectors.evaluation.bench import (METRIC_COLUMNS, TestSet, check_results_dir, evaluate_on_test_set, fit_detector,
                             labels_and_defects, markdown_table, metrics_per_defect, per_defect_table, run_bench,
                             write_overlays)
from detectors.data.training import TrainingSet, training_set
from detectors.evaluation.verdicts import compare_models, describe
from detectors.matrix import check_recorded_settings, run_matrix, write_report
from detectors.matrix.inputs import (DEFAULT_DETECTORS, DEFAULT_GENERATORS, anomaly_rows, detector_names,
                                     generator_rows, make_matrix, overrides_by_detector)
from detectors.matrix.plots import SHEET_MAPS
from detectors.matrix.report import REPORT
from synth.cli import run_command_line
from synth.data import Category, ImageSize, load_category
from synth.data.size import MAX_SIDE, SizeParam
from synth.errors import SynthError
from synth.pipeline.provenance import portable_value
from synth.shards import MANIFEST, read_manifest, verify_dataset

DEFAULT_ANOMALY_FRACTION = 0.25
DEFAULT_SIDE = 256  # images of a saved model that recorded no size
MIN_DETECTOR_SIDE = 32  # the backbone's coarsest tap has stride 32
log = logging.getLogger("detectors")


def parse_settings(pairs: Sequence[str]) -> dict[str, Any]:
    """KEY=VALUE pairs -> settings; values are read as JSON when they parse (numbers, lists), else as text."""
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SynthError(f"expected KEY=VALUE, got {pair!r}")
        try:
            settings[key] = json.loads(value)
        except ValueError:
            settings[key] = value
    return settings


def data_options(command):
    """Options shared by fit and bench: where the category and the synthetic anomalies come from."""
    for option in reversed([
        click.option("--data", "root", type=click.Path(path_type=Path), default=None,
                     help="Dataset root (MVTec AD, MPDD, BTAD, VisA or folder); built-in categories without it."),
        click.option("--category", required=True, help="Category name."),
        click.option("--size", type=SizeParam(min_side=MIN_DETECTOR_SIDE), default="256", show_default=True,
                     help=f"Image size in pixels: a side (256) or HEIGHTxWIDTH (256x512), {MIN_DETECTOR_SIDE} to "
                          f"{MAX_SIDE} per side."),
        click.option("--tile", type=SizeParam(min_side=MIN_DETECTOR_SIDE), default=None,
                     help="Fit and score on overlapping tiles of this size (a side or HEIGHTxWIDTH), maps stitched "
                          "back, instead of whole images of --size."),
        click.option("--tile-stride", type=SizeParam(min_side=1), default=None,
                     help="Pixels between tiles [default: half the tile]."),
        click.option("--backbone", type=click.Choice(list(BACKBONES)), default=None,
                     help="Feature backbone (default: each detector's default, efficientnet-lite0)."),
        click.option("--weights", type=click.Path(path_type=Path), default=None,
                     help="Backbone weights file (torchvision backbones)."),
        click.option("--anomalies", multiple=True, help="Synth dataset directory or Hub id (repeatable)."),
        click.option("--anomaly-fraction", type=click.FloatRange(0, 1, max_open=True), default=None,
                     help=f"Share of each training batch drawn from --anomalies [default: {DEFAULT_ANOMALY_FRACTION} for "
                          "SimpleNet; each detector's own anomaly_fraction setting, 0.5, for the others that train on them]."),
        click.option("--max-anomalies", type=click.IntRange(1), default=None, help="Read at most this many per dataset."),
        click.option("--paper", is_flag=True, help="Use the paper's settings instead of the CPU-scaled defaults."),
        click.option("--overwrite", is_flag=True, help="Replace existing output."),
    ]):
        command = option(command)
    return command


def check_directory_option(out: Path) -> None:
    """SynthError when ``--out`` names an existing file (checked before any work is done)."""
    if out.exists() and not out.is_dir():
        raise SynthError(f"--out {out} exists and is not a directory")


def common_settings(backbone: str | None, weights: Path | None, tile: ImageSize | None = None,
                    tile_stride: ImageSize | None = None) -> dict[str, Any]:
    """The settings every detector takes from the shared options (only those given)."""
    if tile_stride and not tile:
        raise SynthError("--tile-stride needs --tile")
    settings = {"backbone": backbone, "backbone_weights": str(weights) if weights else None,
                "tile": tile.shape if tile else None, "tile_stride": tile_stride.shape if tile_stride else None}
    return {key: value for key, value in settings.items() if value is not None}


def fraction_setting(name: str, anomaly_fraction: float | None) -> dict[str, float]:
    """--anomaly-fraction as the setting of a detector that mixes its batches itself (RealNet, PRN, GLASS,
    patchcore-refine); the others take it from the training set (``load_training``)."""
    fields = {field.name for field in dataclasses.fields(get_detector_class(name).config_class)}
    return {"anomaly_fraction": anomaly_fraction} if anomaly_fraction is not None and "anomaly_fraction" in fields else {}


def check_tile(settings: dict[str, Any], size: ImageSize) -> None:
    """SynthError before any work when ``--tile`` does not fit in images of ``size``."""
    tiler = DetectorConfig(tile=settings.get("tile"), tile_stride=settings.get("tile_stride")).tiler()
    if tiler:
        tiler.origins(*size.shape)


def check_anomaly_sources(anomalies: Sequence[str], category: str, size: ImageSize | int) -> None:
    """Refuse a damaged local synth dataset (a foreign or unreadable manifest, a damaged shard, a shard
    missing from a complete set); one warning line for an incomplete one or one of another category or size."""
    for source in anomalies:
        path = Path(source)
        if not path.is_dir():
            continue
        manifest = read_manifest(path)
        if manifest is None:
            if (path / MANIFEST).exists():
                raise SynthError(f"{source}: {MANIFEST} is unreadable or not synth's; regenerate the dataset")
            continue
        shards = verify_dataset(path, manifest)
        planned = manifest["num_shards"]
        if manifest.get("complete") and len(shards) != planned:
            raise SynthError(f"{source} is damaged: {planned - len(shards)} of its {planned} shards are missing")
        if not manifest.get("complete"):
            log.warning("%s is incomplete (%d of %d shards written): training on part of it; finish it with "
                        "`synth gen ... --resume`", source, len(shards), planned)
        if manifest.get("category") != category:
            log.warning("%s holds anomalies made from %s, not %s", source, manifest.get("category"), category)
        made = ImageSize.from_record(manifest) if manifest.get("size") is not None else None
        if made is not None and made != ImageSize.coerce(size):
            log.warning("%s was made at %s px; its images are resized to %s px", source, made, size)


def load_training(category: Category, anomalies: Sequence[str], anomaly_fraction: float | None,
                  max_anomalies: int | None) -> TrainingSet:
    check_anomaly_sources(anomalies, category.name, category.size)
    fraction = anomaly_fraction if anomaly_fraction is not None else (DEFAULT_ANOMALY_FRACTION if anomalies else 0.0)
    return training_set(category, anomalies, fraction, max_anomalies)


@click.group()
@click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads (default: torch's choice).")
def cli(threads: int | None) -> None:
    """Fit, evaluate and benchmark anomaly detectors on real categories and synth datasets."""
    if threads:
        torch.set_num_threads(threads)


@cli.command()
@click.option("--detector", "name", type=click.Choice(sorted(DETECTORS)), required=True)
@data_options
@click.option("--set", "pairs", multiple=True, metavar="KEY=VALUE", help="A detector setting (repeatable).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Directory for the fitted model.")
def fit(name, root, category, size, tile, tile_stride, backbone, weights, anomalies, anomaly_fraction, max_anomalies, paper,
        overwrite, pairs, out) -> None:
    """Fit one detector on a category's normal images (and synthetic anomalies) and save it."""
    shared = common_settings(backbone, weights, tile, tile_stride)
    check_tile(shared, size)
    detector = create_detector(name, paper, **{**shared, **fraction_setting(name, anomaly_fraction), **parse_settings(pairs)})
    check_directory_option(out)
    if (out / "config.json").exists() and not overwrite:
        raise SynthError(f"{out} already holds a model; pass --overwrite to replace it")
    data = load_training(load_category(root, category, size=size), anomalies, anomaly_fraction, max_anomalies)
    seconds = fit_detector(detector, data)
    detector.save(out, overwrite=overwrite)
    click.echo(f"fitted {name} on {len(data.normal)} normal + {len(data.anomalous)} synthetic images "
               f"in {seconds:.1f} s -> {out}")


@cli.command("eval")
@click.option("--model", type=click.Path(path_type=Path), required=True, help="Directory written by `detectors fit`.")
@click.option("--data", "root", type=click.Path(path_type=Path), default=None, help="Dataset root.")
@click.option("--category", required=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory for metrics JSON and overlays.")
@click.option("--overlays", type=click.IntRange(0), default=4, show_default=True)
@click.option("--overwrite", is_flag=True)
def evaluate_model(model, root, category, out, overlays, overwrite) -> None:
    """Score a category's test set with a fitted model and print the metrics."""
    if out:
        check_directory_option(out)
    if out and (out / "metrics.json").exists() and not overwrite:
        raise SynthError(f"{out} already holds metrics; pass --overwrite to replace them")
    detector = load_detector(model)
    size = detector.config.image_size() or ImageSize.square(DEFAULT_SIDE)
    test = TestSet.from_category(load_category(root, category, size=size), size)
    result, maps = evaluate_on_test_set(detector, test)
    per_defect = metrics_per_defect(test, np.asarray(result.image_scores), maps)
    click.echo(markdown_table([result]), nl=False)
    click.echo("\n" + per_defect_table(per_defect), nl=False)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps({
            "model": portable_value(str(model), {}), "category": category, **size.record(), "score_seconds": result.score_seconds,
            **result.metrics, "intervals": result.intervals, "image_scores": result.image_scores,
            "training": result.training, "per_defect": per_defect, **labels_and_defects(test)}, indent=2) + "\n")
        write_overlays(out / "overlays", detector.name, test, maps, overlays)


@cli.command()
@click.option("-a", "--model-a", "models_a", multiple=True, required=True, type=click.Path(path_type=Path),
              help="A saved model of side A, one per training seed (repeatable).")
@click.option("-b", "--model-b", "models_b", multiple=True, required=True, type=click.Path(path_type=Path),
              help="A saved model of side B, one per training seed (repeatable).")
@click.option("--data", "root", type=click.Path(path_type=Path), default=None, help="Dataset root.")
@click.option("--category", required=True)
@click.option("--names", default="A,B", show_default=True, help="The two sides' names, comma-separated.")
@click.option("--resamples", type=click.IntRange(1), default=1000, show_default=True)
def compare(models_a, models_b, root, category, names, resamples) -> None:
    """Is A better than B on this test set? Two-level bootstrap verdicts on image AUROC, pixel AUROC and AUPRO."""
    name_a, _, name_b = names.partition(",")
    if not name_a or not name_b:
        raise SynthError(f"--names {names!r}: expected two names separated by a comma")
    for model in (*models_a, *models_b):
        if not (model / "config.json").is_file():
            raise SynthError(f"{model} is not a saved model (no config.json; see `detectors fit`)")
    found = compare_models(root, category, models_a, models_b, ImageSize.square(DEFAULT_SIDE), resamples)
    click.echo(f"{name_a} ({len(models_a)} seeds) vs. {name_b} ({len(models_b)} seeds) on {category}:")
    for line in describe(name_a, name_b, found):
        click.echo(f"- {line}")


@cli.command()
@click.option("--detectors", "names", default="patchcore,simplenet", show_default=True,
              help="Comma-separated detector names.")
@data_options
@click.option("--set", "pairs", multiple=True, metavar="DETECTOR.KEY=VALUE", help="A detector setting (repeatable).")
@click.option("--overlays", type=click.IntRange(0), default=4, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Results directory.")
def bench(names, root, category, size, tile, tile_stride, backbone, weights, anomalies, anomaly_fraction, max_anomalies, paper,
          overwrite, pairs, overlays, out) -> None:
    """Fit and evaluate several detectors on one category; write results.json, results.md and overlays."""
    names = [name.strip() for name in names.split(",") if name.strip()]
    if not names:
        raise SynthError(f"--detectors names no detector; choose from {', '.join(sorted(DETECTORS))}")
    for name in names:
        if name not in DETECTORS:
            raise SynthError(f"unknown detector {name!r}; choose from {', '.join(sorted(DETECTORS))}")
    shared = common_settings(backbone, weights, tile, tile_stride)
    check_tile(shared, size)
    settings = {name: {**shared, **fraction_setting(name, anomaly_fraction)} for name in names}
    for key, value in parse_settings(pairs).items():
        name, _, field = key.partition(".")
        if name not in settings or not field:
            raise SynthError(f"--set {key}: expected DETECTOR.KEY with DETECTOR one of {', '.join(names)}")
        settings[name][field] = value
    check_results_dir(out, overwrite)
    category_data = load_category(root, category, size=size)
    train = load_training(category_data, anomalies, anomaly_fraction, max_anomalies)
    results = run_bench(category_data, names, out, train, settings, paper, overlays, overwrite)
    click.echo(markdown_table(results), nl=False)
    click.echo(f"results in {out} ({', '.join(METRIC_COLUMNS.values())}, wall times, overlays)")


@cli.command("matrix")
@click.option("--data", "root", type=click.Path(path_type=Path), required=True,
              help="Dataset root (MVTec AD, MPDD, BTAD, VisA or folder).")
@click.option("--category", required=True, help="Category name.")
@click.option("--generators", default=None,
              help=f"Comma-separated generators and mixes (mix:draem=1,strokes=1) [default: {DEFAULT_GENERATORS}, "
                   "none with --anomalies].")
@click.option("--anomalies", "sets", multiple=True, type=click.Path(path_type=Path),
              help="An existing synth dataset as one more row, the same for every seed (repeatable).")
@click.option("--detectors", "names", default=DEFAULT_DETECTORS, show_default=True,
              help="Comma-separated detectors trained on the anomalies (PatchCore always runs as the reference).")
@click.option("--seeds", type=click.IntRange(1), default=3, show_default=True, help="Seeds 0..N-1 per cell.")
@click.option("--size", type=SizeParam(min_side=MIN_DETECTOR_SIDE), default="256", show_default=True,
              help="Image size for generation and detectors: a side (256) or HEIGHTxWIDTH (256x512).")
@click.option("--tile", type=SizeParam(min_side=MIN_DETECTOR_SIDE), default=None,
              help="Fit and score every cell on overlapping tiles of this size.")
@click.option("--tile-stride", type=SizeParam(min_side=1), default=None, help="Pixels between tiles [default: half].")
@click.option("--count", type=click.IntRange(1), default=500, show_default=True,
              help="Anomalies per generator and seed.")
@click.option("--textures", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Texture root (the DTD) for DRAEM and PRN [default: built-in textures].")
@click.option("--threads", type=click.IntRange(1), default=None, help="torch threads of each fit [default: torch's].")
@click.option("--set", "pairs", multiple=True, metavar="DETECTOR.KEY=VALUE",
              help="A detector setting for every cell of DETECTOR (repeatable).")
@click.option("--report-only", is_flag=True, help="Only rewrite the report from the cells already finished.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder of shards, cells, report.md (run again to resume).")
def matrix(root, category, generators, sets, names, seeds, size, tile, tile_stride, count, textures, threads, pairs,
           report_only, out) -> None:
    """Which anomalies for my part: each detector trained on each generator's anomalies over seeds, PatchCore
    as the reference; writes OUT/report.md, report.json and plots. Resumes: finished cells are never refitted."""
    check_tile(common_settings(None, None, tile, tile_stride), size)
    detectors = detector_names(names)
    rows = generator_rows(DEFAULT_GENERATORS if generators is None and not sets else generators or "", textures)
    grid = make_matrix(out, root, category, rows, anomaly_rows(sets, tuple(rows)), detectors, size=size,
                       count=count, seeds=seeds, threads=threads, tile=tile, tile_stride=tile_stride,
                       overrides=overrides_by_detector(parse_settings(pairs), detectors), overlays=SHEET_MAPS)
    out.mkdir(parents=True, exist_ok=True)
    check_recorded_settings(grid)
    problems = [] if report_only else run_matrix(grid)
    write_report(grid)
    click.echo(f"report in {out / REPORT}" + (f" ({len(problems)} units failed: see it)" if problems else ""))


def main(argv: Sequence[str] | None = None) -> None:
    """The `detectors` entry point: bad input ends with one line on stderr and exit status 2."""
    run_command_line(cli, argv, "detectors")


if __name__ == "__main__":
    main()
