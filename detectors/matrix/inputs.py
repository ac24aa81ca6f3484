"""A matrix from the command line, refusing bad input before any work (one-line ``SynthError``).

``--generators`` takes registered generator names and mixes, comma-separated:
``cutpaste-union,draem,mix:draem=1,strokes=1``. A ``NAME=WEIGHT`` item continues the mix before it,
so the example holds two generators and one mix of draem and strokes; the mix's row is named
``mix-draem-strokes`` (``mix-draem3-strokes1`` when the weights differ).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import click

from detectors.base import DETECTORS, get_detector_class
from detectors.matrix.engine import REFERENCE, Cell, Matrix
from synth.cli.options import parse_mix
from synth.data import ImageSize, load_category
from synth.errors import SynthError
from synth.generators.base import available_generators, generator_class
from synth.generators.mix import mixture_weights
from synth.shards.card import read_manifest

MIX = "mix:"
DEFAULT_GENERATORS = "cutpaste-union,draem,prn-hea,prn-hoa"
DEFAULT_DETECTORS = "realnet,simplenet,prn"
WORK_ENTRIES = ("shards", "bench", "log.txt", "report.md", "report.json")  # what a matrix folder holds, with PNGs
NOT_ROWS = ("mix", "normal")  # a mix is given as mix:SPEC; normal images are no anomalies


def split_generators(text: str) -> list[str]:
    """The comma-separated items, each ``NAME=WEIGHT`` joined to the mix before it."""
    specs: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if "=" in item and not item.startswith(MIX):
            if not specs or not specs[-1].startswith(MIX):
                raise SynthError(f"--generators: {item!r} follows no mix:NAME=WEIGHT")
            specs[-1] += "," + item
        else:
            specs.append(item)
    return specs


def mix_row(spec: str) -> tuple[str, tuple[str, ...]]:
    """A mix's row name and `synth gen` arguments from ``draem=1,strokes=1``."""
    try:
        weights = parse_mix(spec)
    except click.BadParameter as error:
        raise SynthError(f"--generators mix:{spec}: {error.format_message()}") from None
    for name in weights:
        check_generator(name, in_mix=True)
    mixture_weights(weights)
    equal = len(set(weights.values())) == 1
    name = "mix-" + "-".join(component if equal else f"{component}{weight:g}" for component, weight in weights.items())
    return name, ("-g", "mix", "--mix", spec)


def check_generator(name: str, in_mix: bool = False) -> None:
    """SynthError for a name no generator is registered under (or one that makes no anomaly row)."""
    generator_class(name)
    if name == "mix" or (name == "normal" and not in_mix):
        choices = ", ".join(g for g in available_generators() if g not in NOT_ROWS)
        raise SynthError(f"--generators: {name!r} is no anomaly generator (a mix is mix:NAME=WEIGHT,...); "
                         f"choose from {choices}")


def generator_rows(text: str, textures: Path | None) -> dict[str, tuple[str, ...]]:
    """Row name -> `synth gen` generator arguments (``--textures`` given to each)."""
    rows: dict[str, tuple[str, ...]] = {}
    for spec in split_generators(text):
        if spec.startswith(MIX):
            name, arguments = mix_row(spec[len(MIX):])
        else:
            check_generator(spec)
            name, arguments = spec, ("-g", spec)
        if name in rows:
            raise SynthError(f"--generators names {name} twice")
        rows[name] = arguments + (("--textures", str(textures)) if textures else ())
    return rows


def anomaly_rows(folders: Sequence[Path], taken: Sequence[str] = ()) -> dict[str, str]:
    """Row name (the folder's name) -> folder, for complete synth datasets given with --anomalies."""
    rows: dict[str, str] = {}
    for folder in folders:
        manifest = read_manifest(folder)
        if manifest is None:
            raise SynthError(f"--anomalies {folder} is not a synth dataset (no manifest.json of synth's)")
        if not manifest.get("complete"):
            raise SynthError(f"--anomalies {folder} is incomplete; finish it with `synth gen ... --resume`")
        if folder.name in rows or folder.name in taken:
            raise SynthError(f"--anomalies: two rows are named {folder.name}; give sets with different folder names")
        rows[folder.name] = str(folder)
    return rows


def detector_names(text: str) -> tuple[str, ...]:
    """Comma-separated detectors that train on anomalies (PatchCore always runs as the reference)."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    trained = sorted(name for name, detector in DETECTORS.items() if detector.uses_anomalies)
    if not names:
        raise SynthError(f"--detectors names no detector; choose from {', '.join(trained)}")
    for name in names:
        if name not in trained:
            why = (f"{name} runs as the reference of every matrix" if name == REFERENCE else
                   f"{name} does not train on anomalies" if name in DETECTORS else f"unknown detector {name!r}")
            raise SynthError(f"--detectors: {why}; choose from {', '.join(trained)}")
    if len(set(names)) < len(names):
        raise SynthError("--detectors names a detector twice")
    return names


def overrides_by_detector(settings: dict[str, Any], detectors: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{"realnet.lr": 0.001}`` (parsed --set pairs) by detector, for the chosen detectors and PatchCore."""
    overrides: dict[str, dict[str, Any]] = {}
    for key, value in settings.items():
        detector, _, setting = key.partition(".")
        if detector not in (*detectors, REFERENCE) or not setting:
            raise SynthError(f"--set {key}: expected DETECTOR.KEY=VALUE with DETECTOR one of "
                             f"{', '.join((*detectors, REFERENCE))}")
        overrides.setdefault(detector, {})[setting] = value
    return overrides


def check_data(root: Path, category: str, size: ImageSize) -> None:
    """SynthError unless ``root`` holds ``category`` with training images and a test set (read at ``size``,
    so a stretch warning names the size the cells use)."""
    found = load_category(root, category, size=size)
    if not found.train_images or not found.test:
        raise SynthError(f"category {category} in {root} has no {'test' if found.train_images else 'training'} images")


def check_work_folder(out: Path) -> None:
    """Refuse an --out that is a file or a folder holding anything but a matrix's files."""
    if out.exists() and not out.is_dir():
        raise SynthError(f"--out {out} is not a directory")
    others = sorted(p.name for p in out.iterdir() if p.name not in WORK_ENTRIES and p.suffix != ".png"
                    and not p.name.startswith(".")) if out.exists() else []
    if others:
        raise SynthError(f"{out} is not a matrix folder (it holds {others[0]}"
                         f"{f' and {len(others) - 1} more' if len(others) > 1 else ''}); choose a new or empty --out")


def make_matrix(out: Path, data: Path, category: str, rows: dict[str, tuple[str, ...]], anomalies: dict[str, str],
                detectors: tuple[str, ...], **options: Any) -> Matrix:
    """The matrix of one category, its input checked: data, work folder and every cell's detector config
    (``options``: size, count, seeds, threads, tile, tile_stride, overrides, overlays)."""
    if not rows and not anomalies:
        raise SynthError("no anomalies to train on: give --generators or --anomalies")
    check_data(data, category, ImageSize.coerce(options["size"]))
    check_work_folder(out)
    matrix = Matrix(out.absolute(), {category: str(data)}, rows, detectors, anomalies=anomalies, **options)
    seen, option = (matrix.tile, "--tile") if matrix.tile else (matrix.size, "--size")
    for detector in (REFERENCE, *detectors):
        multiple = get_detector_class(detector).size_multiple
        if seen.height % multiple or seen.width % multiple:
            raise SynthError(f"{detector} needs image sides that are multiples of {multiple}, got {option} {seen}")
        matrix.asked_config(Cell(category, None, detector, 0))  # a bad --set fails here
    return matrix
