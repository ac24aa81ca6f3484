"""Reproduces the published generator x detector matrix on top of `detectors matrix`'s engine.

The engine (``detectors/matrix/``) runs the cells, resumes, checks settings and bootstraps the verdicts;
this script holds what the published tables add: the categories and their data (``DATASETS``), the
generators and named mixes (``GENERATORS``, ``MIXES``), the training budgets (``BUDGETS``), the record
of every finished cell kept in git (``benchmarks/results/matrix-<size>px``: a cell found there counts as
finished, so the tables survive the loss of --work and a later run elsewhere fits only what is missing),
and the writer of the "## Generator x detector matrix" section of ``DOCS_PAGE`` (mean ± std over seeds,
bootstrap intervals over test images, two-level verdicts) with docs/img/matrix_<category>.png.

    python benchmarks/matrix.py --work runs/matrix
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import click

if __name__ == "__main__":  # benchmarks/detectors.py would shadow the package: the repository root comes first
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from detectors.matrix.engine import REFERENCE, Cell, Group, Matrix, Shards, units  # noqa: E402
from detectors.matrix.plots import auroc_plot  # noqa: E402
from detectors.matrix.results import check_recorded_settings, collect, generation_seconds, keep_records  # noqa: E402
from detectors.matrix.runner import run_matrix  # noqa: E402
from detectors.matrix.stats import best_cell, compare, interval, seconds_mean, spread, steps, values_of  # noqa: E402
from detectors.training.loop import epoch_schedule  # noqa: E402
from synth.cli import run_command_line  # noqa: E402
from synth.data.size import ImageSize, SizeParam  # noqa: E402
from synth.errors import SynthError  # noqa: E402

# Training budgets, passed to every cell with --set: a cap and a validation interval in optimiser steps
# (RealNet and PRN count in epochs, so both become whole epochs per category: a validation about every
# `val_every` steps whatever the category's size). Training stops after `patience` validations without
# improvement.
BUDGETS = {
    "realnet": {"max_steps": 2000, "val_every": 50, "patience": 4},
    "simplenet": {"max_steps": 4000, "val_every": 100, "patience": 4},
    "prn": {"max_steps": 2000, "val_every": 50, "patience": 4},
}
EPOCH_BUDGETS = ("realnet", "prn")  # detectors whose cap is given in epochs
NORMALS_PER_STEP = 8  # normal images per RealNet / PRN optimiser step (batch 16, half of it anomalies)

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
DOCS_PAGE = DOCS / "benchmarks" / "quality.md"  # the page that holds SECTION
IMAGES = DOCS / "img"  # matrix_<category>.png
RECORDS = REPO / "benchmarks" / "results"  # default --record: RECORDS / f"matrix-{size}px"
DATA = Path("..", "shared", "data")  # relative to the repository root, where every command runs
DATASETS = {"metal_plate": DATA / "mpdd", "bottle": DATA / "mvtec", "magnetic_tile": DATA / "mtd"}
TEXTURES = ["--textures", str(DATA / "dtd")]
DETECTOR_NAMES = {"realnet": "RealNet", "simplenet": "SimpleNet", "prn": "PRN", "glass": "GLASS"}  # as the papers write them
MIXES = {"mix-draem-cutpaste": "draem=1,cutpaste-union=1", "mix-draem-prn-hoa": "draem=1,prn-hoa=1",
         "mix-uniform": "cutpaste-union=1,draem=1,prn-hea=1,prn-hoa=1",
         "mix-strokes-cutpaste": "strokes=1,cutpaste-union=1"}  # the recommended cell's mix for thin defects
GENERATORS = {"cutpaste-union": ["-g", "cutpaste-union"], "draem": ["-g", "draem", *TEXTURES],
              "prn-hea": ["-g", "prn-hea", *TEXTURES], "prn-hoa": ["-g", "prn-hoa"], "sdas": ["-g", "sdas", "--blend"],
              "strokes": ["-g", "strokes"], "nsa": ["-g", "nsa"],  # thin cracks; patches of other normal images
              "sdas-contrast": ["-g", "sdas", "--blend", "--contrast", "10:20"],  # s chosen per model by visibility
              # the same part with anomalies: SDEdit start at t0 = 400, masks where P differs from its s = 0 twin
              "sdas-t0": ["-g", "sdas", "--blend", "-o", "t0=400", "-o", "mask=both"],
              **{name: ["-g", "mix", "--mix", spec, *TEXTURES] for name, spec in MIXES.items()}}
# `sdas-t0`'s s per bundled model, U[s*, 2 s*]: s* is the smallest of 0.25, 0.5, 1, 2 at which at least 90 % of
# 32 rows (seed 0, 128 px) get an aligned mask. Chosen on synthetic rows only (docs/generators/sdas.md).
T0_STRENGTH = {"bottle": "1:2", "metal_plate": "0.5:1", "magnetic_tile": "0.5:1"}
# generators judged against DTD textures (draem) for every detector with both cells: (name in the verdict, kind)
AGAINST_DTD = {"sdas-t0": ("SDAS from the image (t0 = 400, aligned masks)", "image-conditioned SDAS"),
               "strokes": ("thin strokes", "thin strokes")}
DETECTORS = tuple(BUDGETS)
SECTION = "## Generator x detector matrix"
DEFAULTS = {"size": ImageSize.square(128), "count": 500, "seeds": 3, "threads": 2, "categories": tuple(DATASETS),
            "generators": tuple(GENERATORS), "detectors": DETECTORS}


def record_name(record: Path) -> str:
    """The record folder as the docs name it: relative inside the repository, else the placeholder RECORD."""
    return os.path.relpath(record, REPO) if record.is_relative_to(REPO) else "RECORD"


@dataclass(frozen=True)
class Published(Matrix):
    """The published matrix: the engine's, with ``BUDGETS`` and an SDAS model per category."""

    models: dict[str, str] = field(default_factory=dict)  # SDAS model per category

    def gen_command(self, shards: Shards) -> list[str]:
        command = super().gen_command(shards)
        if shards.generator == "sdas-t0":
            command += ["--s", T0_STRENGTH[shards.category]]
        model = self.models.get(shards.category)
        return command + ["--model", model] if shards.generator.startswith("sdas") and model else command

    def detector_settings(self, cell: Cell) -> dict[str, Any]:
        """The cell's seed, its detector's budget (``BUDGETS``), then the --set overrides."""
        budget = budget_settings(cell.detector, count_normal(cell.category)) if cell.detector in BUDGETS else {}
        return {"seed": cell.seed, **budget, **self.overrides.get(cell.detector, {})}


def published(work: Path, size: ImageSize = DEFAULTS["size"], count: int = 500, seeds: int = 3,
              categories: Sequence[str] = tuple(DATASETS), generators: Sequence[str] = tuple(GENERATORS),
              detectors: Sequence[str] = DETECTORS, threads: int = 2, models: dict[str, str] | None = None,
              overrides: dict[str, dict[str, str]] | None = None, record: Path | None = None) -> Published:
    """The matrix of these categories, generators and detectors, its commands run from the repository root."""
    return Published(work, {category: str(DATASETS[category]) for category in categories},
                     {generator: tuple(GENERATORS[generator]) for generator in generators}, tuple(detectors),
                     root=REPO, size=size, count=count, seeds=seeds, threads=threads, overrides=overrides or {},
                     record=record, models=models or {})


def budget_settings(detector: str, normal_images: int) -> dict[str, int]:
    """``BUDGETS[detector]`` as detector settings; RealNet's and PRN's step cap becomes whole epochs."""
    budget = BUDGETS[detector]
    if detector not in EPOCH_BUDGETS:
        return dict(budget)
    epochs, val_every = epoch_schedule(math.ceil(normal_images / NORMALS_PER_STEP), budget["max_steps"],
                                       budget["val_every"])
    return {"epochs": epochs, "val_every": val_every, "patience": budget["patience"]}


def count_normal(category: str) -> int:
    """Training images of ``category`` (they set RealNet's and PRN's steps per epoch)."""
    folder = REPO / DATASETS[category] / category / "train" / "good"
    if not folder.is_dir():
        raise SynthError(f"no training images at {os.path.relpath(folder, REPO)} (see ../shared/data/README.md)")
    return sum(1 for path in folder.iterdir() if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))


def default_record(size: ImageSize) -> Path:
    """``matrix-128px`` for a square size (the recorded results' names), ``matrix-256x512px`` otherwise."""
    return RECORDS / f"matrix-{size}px"


def overview(matrix: Published, category: str, groups: dict[Group, list[dict]], missing: dict[Group, str]) -> list[str]:
    """One category: image / pixel AUROC (mean ± std over seeds) per generator and detector, and its plot."""
    lines = [f"### {category}", "", "| generator | " + " | ".join(matrix.detectors) + " |",
             "|---|" + "---|" * len(matrix.detectors)]
    for generator in matrix.rows:
        row = [f"{spread(values_of(groups[(category, generator, d)], 'image_auroc'))} / "
               f"{spread(values_of(groups[(category, generator, d)], 'pixel_auroc'))}" for d in matrix.detectors]
        lines.append(f"| {generator} | " + " | ".join(row) + " |")
    reference = groups[(category, None, REFERENCE)]
    lines += ["", f"PatchCore (normal images only): {spread(values_of(reference, 'image_auroc'))} / "
              f"{spread(values_of(reference, 'pixel_auroc'))}.", ""]
    absent = [f"{g or 'normal only'}/{d} ({reason})" for (c, g, d), reason in missing.items()
              if c == category]
    if absent:
        lines += ["Missing: " + "; ".join(absent) + ".", ""]
    image = os.path.relpath(IMAGES / f"matrix_{category}.png", DOCS_PAGE.parent)
    return lines + [f"![matrix {category}]({image})", ""]


def full_table(groups: dict[Group, list[dict]]) -> list[str]:
    """Every (category, generator, detector): all metrics over seeds, intervals, steps and wall times."""
    header = ["category", "generator", "detector", "seeds", "image AUROC", "image AUROC 95 %", "pixel AUROC",
              "pixel AUROC 95 %", "AUPRO@0.3", "pixel AP", "steps", "fit (s)", "score (s)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (category, generator, detector), results in groups.items():
        if not results:
            continue
        values = [spread(values_of(results, "image_auroc")), interval(results, "image_auroc"),
                  spread(values_of(results, "pixel_auroc")), interval(results, "pixel_auroc"),
                  spread(values_of(results, "aupro_0.3")), spread(values_of(results, "pixel_ap"))]
        cells = [category, generator or "normal only", detector, str(len(results)), *values, steps(results),
                 seconds_mean(results, "fit_seconds"), seconds_mean(results, "score_seconds")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def generation_table(matrix: Published) -> list[str]:
    """Mean wall time of `synth gen` per category and generator over the seeds recorded."""
    lines = ["| category | " + " | ".join(matrix.generators) + " |", "|---|" + "---|" * len(matrix.generators)]
    for category in matrix.categories:
        times = [generation_seconds(matrix, category, generator) for generator in matrix.generators]
        lines.append(f"| {category} | " + " | ".join("–" if t is None else f"{t:.0f}" for t in times) + " |")
    return lines


def budget_text() -> str:
    epochs = ", ".join(f"{d} {BUDGETS[d]['max_steps']} steps (whole epochs, validated every whole number of "
                       f"epochs nearest to {BUDGETS[d]['val_every']} steps)" for d in EPOCH_BUDGETS)
    others = ", ".join(f"{d} {b['max_steps']} steps or its paper's full schedule, whichever ends first "
                       f"(validated every {b['val_every']} steps)" for d, b in BUDGETS.items() if d not in EPOCH_BUDGETS)
    patience = ", ".join(sorted({str(b["patience"]) for b in BUDGETS.values()}))
    return (f"Training stops after {patience} validations on held-out synthetic rows without improvement and "
            f"keeps the best checkpoint; caps: {epochs}, {others}. The steps column says for each seed how far "
            "it trained and how many seeds stopped at the cap rather than on a plateau (on a small "
            "category SimpleNet's paper schedule, 40 x 4 epochs, ends before its step cap and counts as the cap).")


def invocation(matrix: Published) -> str:
    """The driver's command line that runs ``matrix`` (options at their defaults left out)."""
    parts = ["python benchmarks/matrix.py --work DIR"]
    if matrix.record and matrix.record != default_record(matrix.size):
        parts.append(f"--record {record_name(matrix.record)}")
    for flag, name in (("--size", "size"), ("-n", "count"), ("--seeds", "seeds"), ("--threads", "threads"),
                       ("--categories", "categories"), ("--generators", "generators"), ("--detectors", "detectors")):
        value = getattr(matrix, name)
        value = tuple(value) if isinstance(value, dict) else value
        if value != DEFAULTS[name]:
            parts.append(f"{flag} {','.join(value) if isinstance(value, tuple) else value}")
    parts += [f"--sdas-model {category}={model}" for category, model in matrix.models.items()]
    parts += [f"--set {detector}.{key}={value}" for detector, settings in matrix.overrides.items()
              for key, value in settings.items()]
    return " ".join(parts)


def with_placeholder(command: list[str], work: str) -> str:
    """The command as text, with DIR for the work folder (it differs between machines)."""
    return " ".join("DIR" + part[len(work):] if part == work or part.startswith(work + os.sep) else part
                    for part in command)


def markdown(matrix: Published, groups: dict[Group, list[dict]], missing: dict[Group, str]) -> str:
    """The docs section: per-category overviews, the full table, generation times, verdicts, commands."""
    threads = "/".join(str(t) for t in sorted({r["threads"] for rs in groups.values() for r in rs if r.get("threads")}))
    commands = [with_placeholder(matrix.command(unit), matrix.portable(matrix.work)) for unit in units(matrix)]
    mixes = "; ".join(f"`{name}` = `--mix {spec}`" for name, spec in MIXES.items() if name in matrix.generators)
    lines = [SECTION, "",
             f"Real test sets; each detector trained on {matrix.count} synthetic anomalies per generator and seed at "
             f"{matrix.size.height} x {matrix.size.width} px with {threads or '?'} torch thread(s) per run, {matrix.seeds} seeds "
             "(seed S: `synth gen --seed S` and the detector's seed S). Cells: mean ± sample standard deviation over "
             "the seeds; the 95 % columns are bootstrap intervals over test images (each seed's, bounds averaged). "
             + budget_text() + (f" Mixtures (uniform): {mixes}." if mixes else ""), "",
             f"Produced by `{invocation(matrix)}` (in the background: `nohup {invocation(matrix)} > DIR.log 2>&1 &`). "
             "Run the same command again to resume after an interruption: finished cells are never refitted. "
             + (f"Each finished cell's result is kept in `{record_name(matrix.record)}/`, so the tables can be "
                "rebuilt and the run resumed without DIR. " if matrix.record else "")
             + "`--collect-only` rewrites this section from the results; one driver per category may share DIR "
             "(`--categories`).", ""]
    for category in matrix.categories:
        lines += overview(matrix, category, groups, missing)
    lines += ["All metrics:", "", *full_table(groups), "",
              f"Wall time of `synth gen` for {matrix.count} anomalies (s, mean over seeds; – where resumed or "
              "missing):",
              "", *generation_table(matrix), "", *verdicts(matrix, groups), "",
              f"<details><summary>The {len(commands)} commands it runs (from the repository root)</summary>", "",
              "```", *commands, "```", "", "</details>", ""]
    return "\n".join(lines)


def verdicts(matrix: Published, groups: dict[Group, list[dict]]) -> list[str]:
    """The paper's claim (RealNet: SDAS vs. DTD anomalies); the best synthetic-trained cell, overall and per detector, vs. PatchCore."""
    lines = ["**Verdicts** (image AUROC averaged over seeds; two-level bootstrap, 1,000 resamples: the test images "
             "drawn with replacement, the same draw for both sides, then each side's seeds drawn with replacement, "
             "so the interval holds the spread between training seeds too; \"A beats B\" only when the 95 % "
             "interval of the difference excludes 0; best cells are picked on these test images, which favours them):", ""]
    for category in matrix.categories:
        claim = compare("SDAS", groups.get((category, "sdas", "realnet"), []),
                        "DTD (draem)", groups.get((category, "draem", "realnet"), []))
        lines.append(f"- {category}, the paper's claim (RealNet trained on SDAS vs. on DTD anomalies): {claim}.")
        if (category, "sdas-contrast", "realnet") in groups:
            calibrated = compare("SDAS at --contrast 10:20", groups[(category, "sdas-contrast", "realnet")],
                                 "DTD (draem)", groups.get((category, "draem", "realnet"), []))
            lines.append(f"- {category}, RealNet trained on SDAS by visibility vs. on DTD anomalies: {calibrated}.")
        for generator, (name, kind) in AGAINST_DTD.items():  # for every detector that has both cells
            for detector in matrix.detectors:
                if groups.get((category, generator, detector)) and groups.get((category, "draem", detector)):
                    versus = compare(name, groups[(category, generator, detector)],
                                     "DTD (draem)", groups[(category, "draem", detector)])
                    lines.append(f"- {category}, {DETECTOR_NAMES.get(detector, detector)} trained on {kind} "
                                 f"vs. on DTD anomalies: {versus}.")
        reference = groups.get((category, None, REFERENCE), [])
        best = best_cell(category, groups)
        for detector in [None, *matrix.detectors]:
            cell = best if detector is None else best_cell(category, groups, detector)
            if cell is None or (detector is not None and cell == best):
                continue
            name = f"{cell[1]} with {cell[0]}"
            role = "the best synthetic-trained detector" if detector is None else f"{detector}'s best cell"
            versus = compare(name, groups[(category, *cell)], "PatchCore", reference)
            lines.append(f"- {category}, {role} ({name}) vs. PatchCore: {versus}.")
    return lines


def write_section(path: Path, section: str) -> None:
    """Replace (or append) the section of ``path`` headed by ``section``'s first line; a note quoted
    (``> ``) right under the heading stays."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    heading, _, body = section.partition("\n")
    match = re.search(re.escape(heading) + r"\n\n(?P<note>(?:> [^\n]*\n)+\n)?.*?(?=\n## |\Z)", text, re.S)
    if match:
        kept = heading + "\n\n" + (match.group("note") or "") + body.lstrip("\n").rstrip() + "\n"
        text = text[:match.start()] + kept + text[match.end():]
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text.rstrip() + "\n")


def choose(text: str, allowed: Sequence[str], what: str) -> tuple[str, ...]:
    """Comma-separated names, each one of ``allowed``."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        problem = f"unknown {what} {unknown[0]!r}" if unknown else f"no {what} given"
        raise SynthError(f"{problem}; choose from {', '.join(allowed)}")
    return names


def parse_overrides(pairs: Sequence[str]) -> dict[str, dict[str, str]]:
    """--set DET.KEY=VALUE pairs by detector."""
    overrides: dict[str, dict[str, str]] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        detector, _, setting = key.partition(".")
        if detector not in (*DETECTORS, REFERENCE) or not setting or not value:
            raise SynthError(f"--set {pair}: expected DET.KEY=VALUE with DET one of "
                             f"{', '.join((*DETECTORS, REFERENCE))}")
        overrides.setdefault(detector, {})[setting] = value
    return overrides


def sdas_model(pair: str) -> tuple[str, str]:
    """CATEGORY=DIR; a local DIR becomes relative to the repository root, a Hub id stays as it is."""
    category, _, model = pair.partition("=")
    if category not in DATASETS or not model:
        raise SynthError(f"--sdas-model {pair}: expected CATEGORY=DIR with CATEGORY one of {', '.join(DATASETS)}")
    return category, os.path.relpath(Path(model).resolve(), REPO) if Path(model).exists() else model


@click.command("matrix")
@click.option("--work", type=click.Path(path_type=Path), required=True, help="Shards and bench results (resumable).")
@click.option("--size", type=SizeParam(min_side=32), default="128", show_default=True,
              help="Image size for generation and detectors: a side (128) or HEIGHTxWIDTH (128x256).")
@click.option("-n", "count", default=500, show_default=True, help="Anomalies per generator and seed.")
@click.option("--seeds", type=click.IntRange(1), default=3, show_default=True, help="Seeds 0..N-1 per cell.")
@click.option("--categories", default=",".join(DATASETS), show_default=True, help="Comma-separated categories.")
@click.option("--generators", default=",".join(GENERATORS), show_default=True, help="Comma-separated generators.")
@click.option("--detectors", default=",".join(DETECTORS), show_default=True,
              help="Comma-separated detectors trained on anomalies (PatchCore always runs as the reference).")
@click.option("--threads", type=click.IntRange(1), default=2, show_default=True,
              help="torch threads of each `detectors bench`.")
@click.option("--sdas-model", "sdas_models", multiple=True, metavar="CATEGORY=DIR",
              help="SDAS diffusion model of a category (default: synth's discovery, ./models/CATEGORY).")
@click.option("--set", "pairs", multiple=True, metavar="DET.KEY=VALUE",
              help="A detector setting for every cell of DET, over the default budget (repeatable).")
@click.option("--record", type=click.Path(path_type=Path), default=None,
              help="Where finished cells' results are kept (default: benchmarks/results/matrix-<size>px).")
@click.option("--collect-only", is_flag=True, help="Only read the results already under --work (no runs).")
@click.option("--docs/--no-docs", default=True, help="Write docs/benchmarks/quality.md and docs/img/matrix_*.png.")
def command(work: Path, size: ImageSize, count: int, seeds: int, categories: str, generators: str, detectors: str,
            threads: int, sdas_models: tuple[str, ...], pairs: tuple[str, ...], record: Path | None,
            collect_only: bool, docs: bool) -> None:
    """Run the matrix (or resume it) and write its tables, verdicts and plots."""
    matrix = published(work.resolve(), size, count, seeds, choose(categories, list(DATASETS), "category"),
                       choose(generators, list(GENERATORS), "generator"), choose(detectors, DETECTORS, "detector"),
                       threads, dict(sdas_model(pair) for pair in sdas_models), parse_overrides(pairs),
                       (record or default_record(size)).resolve())
    matrix.work.mkdir(parents=True, exist_ok=True)
    check_recorded_settings(matrix)
    if not collect_only:
        run_matrix(matrix)
    keep_records(matrix)  # cells finished before records were kept, or by another driver
    groups, missing = collect(matrix)
    section = markdown(matrix, groups, missing)
    click.echo(section)
    if docs:
        IMAGES.mkdir(parents=True, exist_ok=True)
        for category in matrix.categories:
            auroc_plot(IMAGES / f"matrix_{category}.png", matrix, category, groups)
        write_section(DOCS_PAGE, section)


def main(argv: Sequence[str] | None = None) -> None:
    """Bad input ends with one line on stderr and exit status 2."""
    run_command_line(command, argv, "matrix")


if __name__ == "__main__":
    main()
