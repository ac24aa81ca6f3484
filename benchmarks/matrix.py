"""Generator x detector matrix over seeds: anomalies from each generator, one `detectors bench` per cell.

A cell is (category, generator, detector, seed): `synth gen --seed S` makes the generator's anomalies
for seed S (shared by the detectors), and `detectors bench --detectors D --set D.seed=S` trains and
scores one detector on them. PatchCore (normal images only) is one cell per (category, seed), the
reference line. Training ends on a plateau of the detector's validation on held-out synthetic rows;
``BUDGETS`` caps it. Everything is kept under --work: a cell with a results.json is finished and is
never re-run, so an interrupted run resumes where it stopped (shards with `synth gen --resume`).
Each unit's wall time and last error are kept next to its folder (``seed0.seconds``, ``seed0.error``):
the progress bar estimates the time left from the wall times of similar finished units. Every finished
cell's result (metrics, intervals, per-image scores, training summary, wall time; no machine paths) is
also copied to --record (by default ``benchmarks/results/matrix-<size>px``, kept in git): a cell found
there counts as finished, so the tables survive the loss of --work and a later run on another machine
fits only what is missing.
Writes the "## Generator x detector matrix" section of docs/benchmarks.md (mean ± std over seeds,
bootstrap intervals over test images, two-level bootstrap verdicts) and docs/img/matrix_<category>.png
(drawn with OpenCV: matplotlib is not a dependency).

    python benchmarks/matrix.py --work runs/matrix
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import click
import cv2
import numpy as np
from tqdm import tqdm

if __name__ == "__main__":  # benchmarks/detectors.py would shadow the package: the repository root comes first
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from detectors.base import get_detector_class, make_config  # noqa: E402
from detectors.evaluation.metrics import paired_difference_interval_over_seeds  # noqa: E402
from detectors.training.loop import epoch_schedule  # noqa: E402
from synth.data.size import ImageSize, SizeParam  # noqa: E402

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
RECORDS = REPO / "benchmarks" / "results"  # default --record: RECORDS / f"matrix-{size}px"
DATA = Path("..", "shared", "data")  # relative to the repository root, where every command runs
DATASETS = {"metal_plate": DATA / "mpdd", "bottle": DATA / "mvtec"}
TEXTURES = ["--textures", str(DATA / "dtd")]
MIXES = {"mix-draem-cutpaste": "draem=1,cutpaste-union=1", "mix-draem-prn-hoa": "draem=1,prn-hoa=1",
         "mix-uniform": "cutpaste-union=1,draem=1,prn-hea=1,prn-hoa=1"}
GENERATORS = {"cutpaste-union": ["-g", "cutpaste-union"], "draem": ["-g", "draem", *TEXTURES],
              "prn-hea": ["-g", "prn-hea", *TEXTURES], "prn-hoa": ["-g", "prn-hoa"], "sdas": ["-g", "sdas", "--blend"],
              **{name: ["-g", "mix", "--mix", spec, *TEXTURES] for name, spec in MIXES.items()}}
DETECTORS = tuple(BUDGETS)
REFERENCE = "patchcore"
SECTION = "## Generator x detector matrix"
# Run as modules from the repository root: this works whether or not the console scripts are installed.
SYNTH = ("python", "-m", "synth")
DETECTORS_CLI = ("python", "-m", "detectors.cli")

Run = Callable[[list[str]], "str | None"]  # runs a command; None on success, else why it failed


def portable(path: Path) -> str:
    """``path`` relative to the repository root (where commands run), so no command names this machine."""
    return os.path.relpath(path, REPO)


def record_name(record: Path) -> str:
    """The record folder as the docs name it: relative inside the repository, else the placeholder RECORD."""
    return portable(record) if record.is_relative_to(REPO) else "RECORD"


def beside(directory: Path, suffix: str) -> Path:
    """A record kept next to ``directory`` (its wall time, its last error)."""
    return directory.parent / f"{directory.name}.{suffix}"


class InputError(click.ClickException):
    """Bad input (a --work made with other settings, missing data): one line, exit status 2."""

    exit_code = 2


@dataclass(frozen=True)
class Shards:
    """The anomalies of one generator and seed on one category (`synth gen`)."""

    category: str
    generator: str
    seed: int
    restart_flag = "--resume"  # an interrupted `synth gen` continues

    def directory(self, work: Path) -> Path:
        return work / "shards" / self.category / self.generator / f"seed{self.seed}"

    def done(self, work: Path) -> bool:
        manifest = self.directory(work) / "manifest.json"
        return manifest.exists() and bool(json.loads(manifest.read_text()).get("complete"))

    def record(self, record: Path) -> Path:
        """Where this generation's wall time is kept under the record folder."""
        return record.joinpath(self.category, self.generator, "gen", f"seed{self.seed}.json")

    def kinds(self) -> tuple[tuple[str, ...], ...]:
        """Keys of the units whose wall times predict this one's, most alike first."""
        return ("gen", self.category, self.generator), ("gen", self.generator), ("gen",)

    def label(self) -> str:
        return f"{self.category}/{self.generator}/seed{self.seed} gen"


@dataclass(frozen=True)
class Cell:
    """One detector trained with one seed on one generator's shards (generator None: the PatchCore reference)."""

    category: str
    generator: str | None
    detector: str
    seed: int
    restart_flag = "--overwrite"  # an interrupted bench starts over

    @property
    def shards(self) -> Shards | None:
        return Shards(self.category, self.generator, self.seed) if self.generator else None

    def directory(self, work: Path) -> Path:
        parts = [self.category, *([self.generator] if self.generator else []), self.detector]
        return work.joinpath("bench", *parts, f"seed{self.seed}")

    def done(self, work: Path) -> bool:
        return (self.directory(work) / "results.json").exists()

    def record(self, record: Path) -> Path:
        """This cell's kept result under the record folder."""
        return record.joinpath(self.category, self.generator or "normal", self.detector, f"seed{self.seed}.json")

    def kinds(self) -> tuple[tuple[str, ...], ...]:
        return (("bench", self.category, str(self.generator), self.detector), ("bench", self.category, self.detector),
                ("bench", self.detector))

    def label(self) -> str:
        return f"{self.category}/{self.generator or 'normal only'}/{self.detector}/seed{self.seed}"


Unit = Shards | Cell


@dataclass(frozen=True)
class Matrix:
    """What to run: categories x generators x detectors x seeds, and how."""

    work: Path
    size: ImageSize = ImageSize.square(128)
    count: int = 500
    seeds: int = 3
    categories: tuple[str, ...] = tuple(DATASETS)
    generators: tuple[str, ...] = tuple(GENERATORS)
    detectors: tuple[str, ...] = DETECTORS
    threads: int = 2
    models: dict[str, str] = field(default_factory=dict)  # SDAS model per category
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)  # --set DET.KEY=VALUE
    record: Path | None = None  # where finished cells' results are kept (None: nowhere)

    def done(self, unit: Unit) -> bool:
        """Finished: shards complete under --work; a cell with results under --work or in the record."""
        return unit.done(self.work) or bool(isinstance(unit, Cell) and self.record and unit.record(self.record).exists())

    def cells(self) -> list[Cell]:
        """Every cell, seed by seed (a whole seed of the matrix is finished before the next starts)."""
        return [cell for seed in range(self.seeds) for category in self.categories
                for cell in [Cell(category, None, REFERENCE, seed),
                             *(Cell(category, generator, detector, seed)
                               for generator in self.generators for detector in self.detectors)]]

    def command(self, unit: Unit) -> list[str]:
        return self.gen_command(unit) if isinstance(unit, Shards) else self.bench_command(unit)

    def gen_command(self, shards: Shards) -> list[str]:
        command = [*SYNTH, "gen", "--data", str(DATASETS[shards.category]), "--category", shards.category,
                   "--size", str(self.size), *GENERATORS[shards.generator], "-n", str(self.count),
                   "--seed", str(shards.seed), "--out", portable(shards.directory(self.work))]
        model = self.models.get(shards.category)
        return command + ["--model", model] if shards.generator == "sdas" and model else command

    def bench_command(self, cell: Cell) -> list[str]:
        command = [*DETECTORS_CLI, "--threads", str(self.threads), "bench", "--detectors", cell.detector,
                   "--data", str(DATASETS[cell.category]), "--category", cell.category, "--size", str(self.size),
                   "--overlays", "0", "--out", portable(cell.directory(self.work))]
        if cell.shards:
            command += ["--anomalies", portable(cell.shards.directory(self.work))]
        for key, value in self.detector_settings(cell).items():
            command += ["--set", f"{cell.detector}.{key}={value}"]
        return command

    def detector_settings(self, cell: Cell) -> dict[str, object]:
        """The cell's seed, its detector's budget (``BUDGETS``), then the --set overrides."""
        budget = budget_settings(cell.detector, count_normal(cell.category)) if cell.detector in BUDGETS else {}
        return {"seed": cell.seed, **budget, **self.overrides.get(cell.detector, {})}

    def recorded_mismatch(self, unit: Unit) -> str | None:
        """How a finished unit's recorded settings differ from what this matrix asks of it; None if they agree.

        Shards are compared on size and count, cells on their detector's whole config (defaults, budget
        and --set overrides)."""
        if isinstance(unit, Shards):
            recorded = json.loads((unit.directory(self.work) / "manifest.json").read_text())
            asked: dict[str, object] = {**self.size.record(), "num_samples": self.count}
        else:
            recorded = (read_cell(self, unit) or {}).get("config", {})
            config = make_config(get_detector_class(unit.detector), self.detector_settings(unit))
            config.record_size(self.size)
            asked = json.loads(json.dumps(asdict(config)))  # tuples as the lists results.json holds
        for key, value in asked.items():
            if key in recorded and recorded[key] != value:
                return f"{unit.label()}: {key}={recorded[key]} (this run asks {value})"
        return None


def check_recorded_settings(matrix: Matrix) -> None:
    """Refuse to mix results made with other settings (size, count, budget, --set) into this matrix."""
    mismatches = [mismatch for unit in units(matrix) if matrix.done(unit)
                  for mismatch in [matrix.recorded_mismatch(unit)] if mismatch]
    if mismatches:
        more = f" and {len(mismatches) - 1} more" if len(mismatches) > 1 else ""
        raise InputError(f"{portable(matrix.work)} holds results made with other settings "
                         f"({mismatches[0]}{more}); use another --work or the settings they were made with")


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
        raise InputError(f"no training images at {portable(folder)} (see ../shared/data/README.md)")
    return sum(1 for path in folder.iterdir() if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))


@dataclass
class Runner:
    """Runs commands from the repository root and logs their output."""

    log: Path

    def __call__(self, command: list[str]) -> str | None:
        """None on success, else the last error line."""
        result = subprocess.run([sys.executable, *command[1:]] if command[0] == "python" else command,
                                capture_output=True, text=True, cwd=REPO)
        with self.log.open("a") as handle:
            handle.write("$ " + " ".join(command) + "\n" + result.stdout + result.stderr + "\n")
        if result.returncode == 0:
            return None
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else f"exit status {result.returncode}"


def execute(matrix: Matrix, unit: Unit, run: Run) -> str | None:
    """Run ``unit`` (restarting a partial one), keep its wall time or its error beside its directory."""
    directory = unit.directory(matrix.work)
    restarted = directory.exists()
    command = matrix.command(unit) + ([unit.restart_flag] if restarted else [])
    started = time.perf_counter()
    error = run(command)
    directory.parent.mkdir(parents=True, exist_ok=True)  # a command that failed early made nothing
    if error:
        beside(directory, "error").write_text(error + "\n")
        return error
    beside(directory, "error").unlink(missing_ok=True)
    if not (restarted and isinstance(unit, Shards)):  # a resumed generation's time is only its last part
        beside(directory, "seconds").write_text(f"{time.perf_counter() - started:.1f}\n")
    return None


def recorded_seconds(matrix: Matrix, units: Iterable[Unit]) -> dict[Unit, float]:
    """The wall times kept by earlier runs, beside their folders under --work or in the record."""
    seconds = {}
    for unit in units:
        path = beside(unit.directory(matrix.work), "seconds")
        kept = unit.record(matrix.record) if matrix.record and not path.exists() else None
        value = json.loads(kept.read_text()).get("wall_seconds") if kept and kept.exists() else None
        if path.exists() or value is not None:
            seconds[unit] = float(path.read_text()) if path.exists() else value
    return seconds


def estimate(unit: Unit, seconds: dict[Unit, float]) -> float | None:
    """Mean wall time of the finished units most like ``unit``; None when nothing comparable finished."""
    for kind in unit.kinds():
        alike = [value for other, value in seconds.items() if kind in other.kinds()]
        if alike:
            return float(np.mean(alike))
    return None


def duration(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m" if whole >= 3600 else f"{whole // 60}m{whole % 60:02d}s"


def time_left(pending: Sequence[Unit], seconds: dict[Unit, float]) -> str:
    """Estimated wall time of the pending units, "+?" when some have nothing comparable finished yet."""
    estimates = [estimate(unit, seconds) for unit in pending]
    known = [value for value in estimates if value is not None]
    unknown = len(known) < len(estimates)
    return "?" if not known else duration(sum(known)) + ("+?" if unknown else "")


def units(matrix: Matrix) -> list[Unit]:
    """Every unit in run order: each generator's shards just before the first cell that trains on them."""
    ordered: dict[Unit, None] = {}
    for cell in matrix.cells():
        if cell.shards:
            ordered.setdefault(cell.shards)
        ordered.setdefault(cell)
    return list(ordered)


def pending_units(matrix: Matrix) -> list[Unit]:
    """Unfinished cells, and incomplete shards that an unfinished cell needs, in run order."""
    waiting = {cell.shards for cell in matrix.cells() if cell.shards and not matrix.done(cell)}
    return [unit for unit in units(matrix)
            if not matrix.done(unit) and (isinstance(unit, Cell) or unit in waiting)]


def run_matrix(matrix: Matrix, run: Run) -> None:
    """Run every unfinished unit, with a progress bar over all units and an estimate of the time left."""
    every = units(matrix)
    pending = pending_units(matrix)
    seconds = recorded_seconds(matrix, every)
    failed: dict[Shards, str] = {}
    bar_format = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
    with tqdm(total=len(every), initial=len(every) - len(pending), bar_format=bar_format, mininterval=5) as bar:
        for index, unit in enumerate(pending):
            bar.set_description(unit.label())
            bar.set_postfix_str(f"left ≈ {time_left(pending[index:], seconds)}")
            shards = unit.shards if isinstance(unit, Cell) else None
            error = failed[shards] if shards in failed else execute(matrix, unit, run)
            if error and isinstance(unit, Shards):
                failed[unit] = error
            if error:
                bar.write(f"missing {unit.label()}: {error}", file=sys.stderr)
            else:
                seconds.update(recorded_seconds(matrix, [unit]))
                keep_record(matrix, unit)
            bar.update()


def read_cell(matrix: Matrix, cell: Cell) -> dict | None:
    """The cell's result with the test labels, torch thread count and wall time of its run (from --work, else
    from the record); None if not finished."""
    path = cell.directory(matrix.work) / "results.json"
    if not path.exists():
        kept = cell.record(matrix.record) if matrix.record else None
        return json.loads(kept.read_text()) if kept and kept.exists() else None
    document = json.loads(path.read_text())
    result = next((r for r in document.get("results", []) if r.get("detector") == cell.detector), None)
    if result is None:
        return None
    seconds = beside(cell.directory(matrix.work), "seconds")
    return {**result, "labels": document.get("labels"), "threads": document.get("torch_threads"),
            "wall_seconds": float(seconds.read_text()) if seconds.exists() else None}


def keep_record(matrix: Matrix, unit: Unit) -> bool:
    """Copy a finished cell's result, or a generation's wall time, from --work into the record unless it is
    there already; whether it was copied."""
    path = unit.record(matrix.record) if matrix.record else None
    if path is None or path.exists():
        return False
    if isinstance(unit, Cell):
        result = read_cell(matrix, unit)
    else:
        seconds = beside(unit.directory(matrix.work), "seconds")
        result = {"wall_seconds": float(seconds.read_text())} if seconds.exists() else None
    if result is None:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(scrub(json.dumps(result, indent=1), matrix.work) + "\n")
    return True


def keep_records(matrix: Matrix) -> int:
    """Copy every unit finished under --work but missing from the record; how many were copied."""
    return sum(keep_record(matrix, unit) for unit in units(matrix))


def missing_reason(work: Path, cell: Cell) -> str:
    """Why an unfinished cell has no results: its own or its shards' last error, else not run yet."""
    for unit in (cell, cell.shards):
        path = beside(unit.directory(work), "error") if unit else None
        if path and path.exists():
            return path.read_text().strip()
    return "not run yet"


Group = tuple[str, str | None, str]  # (category, generator, detector); generator None for the reference


def collect(matrix: Matrix) -> tuple[dict[Group, list[dict]], dict[Group, str]]:
    """Finished results by (category, generator, detector), seeds in order; reasons for groups with none."""
    groups: dict[Group, list[dict]] = {}
    missing: dict[Group, str] = {}
    for cell in matrix.cells():
        key = (cell.category, cell.generator, cell.detector)
        result = read_cell(matrix, cell)
        groups.setdefault(key, [])
        if result is not None:
            groups[key].append(result)
        elif key not in missing:
            missing[key] = missing_reason(matrix.work, cell)
    return groups, {key: reason for key, reason in missing.items() if not groups[key]}


def values_of(results: Sequence[dict], key: str) -> list[float]:
    """The seeds' values of metric ``key``."""
    return [r["metrics"][key] for r in results if r.get("metrics", {}).get(key) is not None]


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for fewer than two values)."""
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else None


def spread(values: Sequence[float], digits: int = 3) -> str:
    """Mean ± std over seeds; "–" without values."""
    if not values:
        return "–"
    mean, std = mean_std(values)
    return f"{mean:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")


def interval(results: Sequence[dict], key: str) -> str:
    """The seeds' bootstrap intervals over test images, their bounds averaged; "–" where none were written."""
    bounds = [r["intervals"][key] for r in results if (r.get("intervals") or {}).get(key)]
    if not bounds:
        return "–"
    low, high = np.mean(bounds, axis=0)
    return f"[{low:.3f}, {high:.3f}]"


def steps(results: Sequence[dict]) -> str:
    """Optimiser steps each seed ran, and how many stopped at the cap instead of on a validation plateau."""
    trainings = [r.get("training") for r in results]
    if not any(trainings):
        return "–"
    reached = "/".join("–" if t is None else str(t.get("steps", "–")) for t in trainings)
    capped = sum(1 for t in trainings if t and not t.get("stopped_early"))
    return reached + (f" (cap: {capped} of {len(trainings)})" if capped else " (plateau)")


def seconds_mean(results: Sequence[dict], key: str) -> str:
    values = [r[key] for r in results if r.get(key) is not None]
    return f"{np.mean(values):.0f}" if values else "–"


def compare(name_a: str, runs_a: Sequence[dict], name_b: str, runs_b: Sequence[dict]) -> str:
    """Two-level bootstrap (images, then seeds) of the seed-averaged image AUROC difference a − b, in words."""
    if not runs_a or not runs_b:
        return f"not determined ({name_a if not runs_a else name_b}: no results)"
    labels = [r.get("labels") for r in [*runs_a, *runs_b]]
    scores = [r.get("image_scores") for r in [*runs_a, *runs_b]]
    if any(value is None for value in labels + scores) or any(value != labels[0] for value in labels):
        return "not determined (the results lack per-image scores on one shared test set)"
    difference, low, high = paired_difference_interval_over_seeds(
        np.array(labels[0]), [np.array(s) for s in scores[:len(runs_a)]], [np.array(s) for s in scores[len(runs_a):]])
    verdict = (f"{name_a} beats {name_b}" if low > 0 else f"{name_b} beats {name_a}" if high < 0
               else f"no difference shown between {name_a} and {name_b}")
    return (f"{verdict} (image AUROC difference {difference:+.3f}, 95 % interval [{low:+.3f}, {high:+.3f}]; "
            f"{len(runs_a)} vs. {len(runs_b)} seeds)")


def best_synthetic(category: str, groups: dict[Group, list[dict]], detector: str | None = None) -> tuple[str, str] | None:
    """(generator, detector) with the highest seed-mean image AUROC on ``category`` (of ``detector`` if given)."""
    scored = {(g, d): np.mean(values_of(results, "image_auroc")) for (c, g, d), results in groups.items()
              if c == category and g is not None and detector in (None, d) and values_of(results, "image_auroc")}
    return max(scored, key=scored.get) if scored else None  # type: ignore[arg-type]


def verdicts(matrix: Matrix, groups: dict[Group, list[dict]]) -> list[str]:
    """The paper's claim (RealNet: SDAS vs. DTD anomalies); the best synthetic-trained cell, overall and per detector, vs. PatchCore."""
    lines = ["**Verdicts** (image AUROC averaged over seeds; two-level bootstrap, 1,000 resamples: the test images "
             "drawn with replacement, the same draw for both sides, then each side's seeds drawn with replacement, "
             "so the interval holds the spread between training seeds too; \"A beats B\" only when the 95 % "
             "interval of the difference excludes 0; best cells are picked on these test images, which favours them):", ""]
    for category in matrix.categories:
        claim = compare("SDAS", groups.get((category, "sdas", "realnet"), []),
                        "DTD (draem)", groups.get((category, "draem", "realnet"), []))
        lines.append(f"- {category}, the paper's claim (RealNet trained on SDAS vs. on DTD anomalies): {claim}.")
        reference = groups.get((category, None, REFERENCE), [])
        best = best_synthetic(category, groups)
        for detector in [None, *matrix.detectors]:
            cell = best if detector is None else best_synthetic(category, groups, detector)
            if cell is None or (detector is not None and cell == best):
                continue
            name = f"{cell[1]} with {cell[0]}"
            role = "the best synthetic-trained detector" if detector is None else f"{detector}'s best cell"
            versus = compare(name, groups[(category, *cell)], "PatchCore", reference)
            lines.append(f"- {category}, {role} ({name}) vs. PatchCore: {versus}.")
    return lines


def scrub(message: str, work: Path) -> str:
    """An error message without this machine's folders: DIR for the work folder, relative paths for the repository."""
    for folder, placeholder in ((work, "DIR"), (REPO, "."), (REPO.parent, "..")):
        message = message.replace(str(folder), placeholder)
    return message


def overview(matrix: Matrix, category: str, groups: dict[Group, list[dict]], missing: dict[Group, str]) -> list[str]:
    """One category: image / pixel AUROC (mean ± std over seeds) per generator and detector, and its plot."""
    lines = [f"### {category}", "", "| generator | " + " | ".join(matrix.detectors) + " |",
             "|---|" + "---|" * len(matrix.detectors)]
    for generator in matrix.generators:
        row = [f"{spread(values_of(groups[(category, generator, d)], 'image_auroc'))} / "
               f"{spread(values_of(groups[(category, generator, d)], 'pixel_auroc'))}" for d in matrix.detectors]
        lines.append(f"| {generator} | " + " | ".join(row) + " |")
    reference = groups[(category, None, REFERENCE)]
    lines += ["", f"PatchCore (normal images only): {spread(values_of(reference, 'image_auroc'))} / "
              f"{spread(values_of(reference, 'pixel_auroc'))}.", ""]
    absent = [f"{g or 'normal only'}/{d} ({scrub(reason, matrix.work)})" for (c, g, d), reason in missing.items()
              if c == category]
    if absent:
        lines += ["Missing: " + "; ".join(absent) + ".", ""]
    return lines + [f"![matrix {category}](img/matrix_{category}.png)", ""]


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


def generation_table(matrix: Matrix) -> list[str]:
    """Mean wall time of `synth gen` per category and generator over the seeds recorded."""
    lines = ["| category | " + " | ".join(matrix.generators) + " |", "|---|" + "---|" * len(matrix.generators)]
    for category in matrix.categories:
        row = []
        for generator in matrix.generators:
            times = recorded_seconds(matrix, [Shards(category, generator, s) for s in range(matrix.seeds)])
            row.append(f"{np.mean(list(times.values())):.0f}" if times else "–")
        lines.append(f"| {category} | " + " | ".join(row) + " |")
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


def invocation(matrix: Matrix) -> str:
    """The driver's command line that runs ``matrix`` (options at their defaults left out)."""
    default = Matrix(matrix.work)
    parts = ["python benchmarks/matrix.py --work DIR"]
    if matrix.record and matrix.record != default_record(matrix.size):
        parts.append(f"--record {record_name(matrix.record)}")
    for flag, name in (("--size", "size"), ("-n", "count"), ("--seeds", "seeds"), ("--threads", "threads"),
                       ("--categories", "categories"), ("--generators", "generators"), ("--detectors", "detectors")):
        value = getattr(matrix, name)
        if value != getattr(default, name):
            parts.append(f"{flag} {','.join(value) if isinstance(value, tuple) else value}")
    parts += [f"--sdas-model {category}={model}" for category, model in matrix.models.items()]
    parts += [f"--set {detector}.{key}={value}" for detector, settings in matrix.overrides.items()
              for key, value in settings.items()]
    return " ".join(parts)


def with_placeholder(command: list[str], work: str) -> str:
    """The command as text, with DIR for the work folder (it differs between machines)."""
    return " ".join("DIR" + part[len(work):] if part == work or part.startswith(work + os.sep) else part
                    for part in command)


def markdown(matrix: Matrix, groups: dict[Group, list[dict]], missing: dict[Group, str]) -> str:
    """The docs section: per-category overviews, the full table, generation times, verdicts, commands."""
    threads = "/".join(str(t) for t in sorted({r["threads"] for rs in groups.values() for r in rs if r.get("threads")}))
    commands = [with_placeholder(matrix.command(unit), portable(matrix.work)) for unit in units(matrix)]
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


PLOT_METRICS = (("image_auroc", "image AUROC"), ("pixel_auroc", "pixel AUROC"))
COLOURS = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148)]  # BGR per detector
REFERENCE_COLOUR = (60, 60, 200)
LEFT, TOP, HEIGHT, BOTTOM, GROUP, BAR = 60, 50, 260, 40, 150, 30  # panel layout in pixels
MIN_WIDTH = 560  # pixels, so that the title fits however few generators there are


def put(canvas: np.ndarray, words: str, at: tuple[int, int], scale: float = 0.45,
        colour: tuple[int, int, int] = (0, 0, 0)) -> None:
    cv2.putText(canvas, words, at, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def axis_floor(values: Sequence[float]) -> float:
    """The bottom of the value axis: 0.1 below the lowest mean minus its spread, in steps of 0.1, at most 0.9."""
    if not values:
        return 0.0
    return float(np.clip(math.floor(round((min(values) - 0.1) * 10, 6)) / 10, 0.0, 0.9))


def y_of(value: float, low: float = 0.0) -> int:
    """The pixel row of a metric value (the axis runs from ``low`` to 1)."""
    return int(round(TOP + HEIGHT * (1 - (float(np.clip(value, low, 1)) - low) / (1 - low))))


def axes(canvas: np.ndarray, title: str, low: float) -> None:
    """Title, grid lines at every 0.1 (every 0.05 on a short axis) and their labels."""
    put(canvas, title, (10, 20), 0.6)
    for tick in np.arange(low, 1.0001, 0.1 if low < 0.6 else 0.05):
        cv2.line(canvas, (LEFT, y_of(tick, low)), (canvas.shape[1] - 10, y_of(tick, low)), (225, 225, 225), 1)
        put(canvas, f"{tick:.2f}", (LEFT - 42, y_of(tick, low) + 4), 0.4, (90, 90, 90))


def reference_band(canvas: np.ndarray, values: Sequence[float], low: float) -> None:
    """PatchCore's mean ± one standard deviation as a light band (drawn under the bars)."""
    mean, std = mean_std(values) if values else (0.0, None)
    if std:
        band = canvas.copy()
        cv2.rectangle(band, (LEFT, y_of(mean + std, low)), (canvas.shape[1] - 10, y_of(mean - std, low)),
                      (210, 210, 245), -1)
        canvas[:] = cv2.addWeighted(band, 0.5, canvas, 0.5, 0)


def reference_line(canvas: np.ndarray, values: Sequence[float], low: float) -> None:
    """PatchCore's mean as a dashed line (drawn over the bars)."""
    if not values:
        return
    mean, _ = mean_std(values)
    right = canvas.shape[1] - 10
    for x in range(LEFT, right, 12):
        cv2.line(canvas, (x, y_of(mean, low)), (min(x + 6, right), y_of(mean, low)), REFERENCE_COLOUR, 2)
    put(canvas, f"PatchCore {mean:.3f}", (right - 130, y_of(mean, low) - 6), 0.45, REFERENCE_COLOUR)


def bar(canvas: np.ndarray, x: int, values: Sequence[float], colour: tuple[int, int, int], low: float) -> None:
    """A bar at the mean with an error bar of ± one standard deviation; a grey dash without values."""
    width = BAR - 6
    if not values:
        put(canvas, "-", (x + width // 2 - 4, y_of(low, low) - 4), 0.5, (150, 150, 150))
        return
    mean, std = mean_std(values)
    cv2.rectangle(canvas, (x, y_of(mean, low)), (x + width, y_of(low, low)), colour, -1)
    if std:
        centre = x + width // 2
        cv2.line(canvas, (centre, y_of(mean - std, low)), (centre, y_of(mean + std, low)), (0, 0, 0), 1)
        for level in (mean - std, mean + std):
            cv2.line(canvas, (centre - 5, y_of(level, low)), (centre + 5, y_of(level, low)), (0, 0, 0), 1)


def panel(matrix: Matrix, category: str, key: str, title: str, groups: dict[Group, list[dict]]) -> np.ndarray:
    """Bars per generator (one per detector, mean ± std over seeds) with PatchCore as the reference line."""
    width = max(MIN_WIDTH, LEFT + GROUP * len(matrix.generators) + 10)
    canvas = np.full((TOP + HEIGHT + BOTTOM, width, 3), 255, np.uint8)
    reference = values_of(groups[(category, None, REFERENCE)], key)
    cells = {(generator, detector): values_of(groups[(category, generator, detector)], key)
             for generator in matrix.generators for detector in matrix.detectors}
    lows = []
    for values in (reference, *cells.values()):
        if values:
            mean, std = mean_std(values)
            lows.append(mean - (std or 0.0))
    low = axis_floor(lows)
    axes(canvas, f"{category}: {title}, mean +/- std over seeds", low)
    reference_band(canvas, reference, low)
    for j, generator in enumerate(matrix.generators):
        left = LEFT + j * GROUP + 10
        for i, detector in enumerate(matrix.detectors):
            bar(canvas, left + i * BAR, cells[(generator, detector)], COLOURS[i % len(COLOURS)], low)
        put(canvas, generator, (left, y_of(low, low) + 18), 0.4)
    reference_line(canvas, reference, low)
    for i, detector in enumerate(matrix.detectors):
        x = LEFT + i * 110
        cv2.rectangle(canvas, (x, 30), (x + 12, 42), COLOURS[i % len(COLOURS)], -1)
        put(canvas, detector, (x + 16, 41))
    return canvas


def plot(path: Path, matrix: Matrix, category: str, groups: dict[Group, list[dict]]) -> None:
    """docs/img/matrix_<category>.png: image AUROC above pixel AUROC."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate([panel(matrix, category, key, title, groups)
                                           for key, title in PLOT_METRICS]))


def write_section(path: Path, section: str) -> None:
    """Replace (or append) the section of docs/benchmarks.md headed by ``section``'s first line."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(section.splitlines()[0]) + r".*?(?=\n## |\Z)", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip() + "\n", text)
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text.rstrip() + "\n")


def choose(text: str, allowed: Sequence[str], what: str) -> tuple[str, ...]:
    """Comma-separated names, each one of ``allowed``."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        problem = f"unknown {what} {unknown[0]!r}" if unknown else f"no {what} given"
        raise click.UsageError(f"{problem}; choose from {', '.join(allowed)}")
    return names


def parse_overrides(pairs: Sequence[str]) -> dict[str, dict[str, str]]:
    """--set DET.KEY=VALUE pairs by detector."""
    overrides: dict[str, dict[str, str]] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        detector, _, setting = key.partition(".")
        if detector not in (*DETECTORS, REFERENCE) or not setting or not value:
            raise click.UsageError(f"--set {pair}: expected DET.KEY=VALUE with DET one of "
                                   f"{', '.join((*DETECTORS, REFERENCE))}")
        overrides.setdefault(detector, {})[setting] = value
    return overrides


def sdas_model(pair: str) -> tuple[str, str]:
    """CATEGORY=DIR; a local DIR becomes relative to the repository root, a Hub id stays as it is."""
    category, _, model = pair.partition("=")
    if category not in DATASETS or not model:
        raise click.UsageError(f"--sdas-model {pair}: expected CATEGORY=DIR with CATEGORY one of {', '.join(DATASETS)}")
    return category, portable(Path(model).resolve()) if Path(model).exists() else model


def default_record(size: ImageSize) -> Path:
    """``matrix-128px`` for a square size (the recorded results' names), ``matrix-256x512px`` otherwise."""
    return RECORDS / f"matrix-{size}px"


@click.command()
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
@click.option("--docs/--no-docs", default=True, help="Write docs/benchmarks.md and docs/img/matrix_*.png.")
def main(work: Path, size: ImageSize, count: int, seeds: int, categories: str, generators: str, detectors: str,
         threads: int, sdas_models: tuple[str, ...], pairs: tuple[str, ...], record: Path | None, collect_only: bool,
         docs: bool) -> None:
    """Run the matrix (or resume it) and write its tables, verdicts and plots."""
    matrix = Matrix(work.resolve(), size, count, seeds, choose(categories, list(DATASETS), "category"),
                    choose(generators, list(GENERATORS), "generator"), choose(detectors, DETECTORS, "detector"),
                    threads, dict(sdas_model(pair) for pair in sdas_models), parse_overrides(pairs),
                    (record or default_record(size)).resolve())
    matrix.work.mkdir(parents=True, exist_ok=True)
    check_recorded_settings(matrix)
    if not collect_only:
        run_matrix(matrix, Runner(matrix.work / "log.txt"))
    keep_records(matrix)  # cells finished before records were kept, or by another driver
    groups, missing = collect(matrix)
    section = markdown(matrix, groups, missing)
    click.echo(section)
    if docs:
        for category in matrix.categories:
            plot(DOCS / "img" / f"matrix_{category}.png", matrix, category, groups)
        write_section(DOCS / "benchmarks.md", section)


if __name__ == "__main__":
    sys.exit(main())
