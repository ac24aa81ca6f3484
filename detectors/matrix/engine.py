"""What a matrix runs: its units (a generator's shards, a detector's cell), their commands and folders.

A cell is (category, generator, detector, seed): `synth gen --seed S` makes the generator's anomalies
for seed S (shared by the detectors), and `detectors bench --detectors D --set D.seed=S` trains and
scores one detector on them. PatchCore (normal images only) is one cell per (category, seed), the
reference. An existing shard set (``Matrix.anomalies``) is a row without generation: every seed
trains on the same set. Everything lives under ``Matrix.work``: a cell with a results.json is
finished, shards with a complete manifest are made.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from detectors.base import get_detector_class, make_config
from synth.data.size import ImageSize

REFERENCE = "patchcore"
# Run as modules: this works whether or not the console scripts are installed.
SYNTH = ("python", "-m", "synth")
DETECTORS_CLI = ("python", "-m", "detectors.cli")


def beside(directory: Path, suffix: str) -> Path:
    """A record kept next to ``directory`` (its wall time, its last error)."""
    return directory.parent / f"{directory.name}.{suffix}"


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
    """One detector trained with one seed on one generator's anomalies (generator None: the reference)."""

    category: str
    generator: str | None
    detector: str
    seed: int
    restart_flag = "--overwrite"  # an interrupted bench starts over

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
Group = tuple[str, str | None, str]  # (category, generator, detector) over seeds; generator None: the reference


@dataclass(frozen=True)
class Matrix:
    """What to run: categories x anomaly rows x detectors x seeds, and how.

    ``datasets`` maps each category to its data root and ``generators`` each generated row to its
    `synth gen` generator arguments (``-g draem --textures DIR``); ``anomalies`` maps rows that train
    on an existing shard set to its folder. Paths in commands are relative to ``root``, where they run.
    """

    work: Path
    datasets: dict[str, str]
    generators: dict[str, tuple[str, ...]]
    detectors: tuple[str, ...]
    root: Path = field(default_factory=Path.cwd)
    size: ImageSize = ImageSize.square(256)
    count: int = 500
    seeds: int = 3
    anomalies: dict[str, str] = field(default_factory=dict)
    threads: int | None = None  # torch threads of each `detectors bench` (None: torch's choice)
    overlays: int = 0  # overlays each bench writes (image | ground truth | map)
    tile: ImageSize | None = None
    tile_stride: ImageSize | None = None
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # --set DET.KEY=VALUE
    record: Path | None = None  # where finished cells' results are kept (None: nowhere)

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(self.datasets)

    @property
    def rows(self) -> tuple[str, ...]:
        """The anomaly rows: generated ones, then existing shard sets."""
        return (*self.generators, *self.anomalies)

    def portable(self, path: Path) -> str:
        """``path`` relative to ``root`` (where commands run), so no command names this machine."""
        return os.path.relpath(path, self.root)

    def done(self, unit: Unit) -> bool:
        """Finished: shards complete under ``work``; a cell with results under ``work`` or in the record."""
        kept = isinstance(unit, Cell) and self.record and unit.record(self.record).exists()
        return unit.done(self.work) or bool(kept)

    def cells(self) -> list[Cell]:
        """Every cell, seed by seed (a whole seed of the matrix is finished before the next starts)."""
        return [cell for seed in range(self.seeds) for category in self.categories
                for cell in [Cell(category, None, REFERENCE, seed),
                             *(Cell(category, row, detector, seed)
                               for row in self.rows for detector in self.detectors)]]

    def shards_of(self, cell: Cell) -> Shards | None:
        """The generation a cell trains on; None for the reference and for an existing shard set."""
        return Shards(cell.category, cell.generator, cell.seed) if cell.generator in self.generators else None

    def command(self, unit: Unit) -> list[str]:
        return self.gen_command(unit) if isinstance(unit, Shards) else self.bench_command(unit)

    def gen_command(self, shards: Shards) -> list[str]:
        return [*SYNTH, "gen", "--data", self.datasets[shards.category], "--category", shards.category,
                "--size", str(self.size), *self.generators[shards.generator], "-n", str(self.count),
                "--seed", str(shards.seed), "--out", self.portable(shards.directory(self.work))]

    def bench_command(self, cell: Cell) -> list[str]:
        threads = ["--threads", str(self.threads)] if self.threads else []
        tiles = [*(["--tile", str(self.tile)] if self.tile else []),
                 *(["--tile-stride", str(self.tile_stride)] if self.tile_stride else [])]
        command = [*DETECTORS_CLI, *threads, "bench", "--detectors", cell.detector, "--data",
                   self.datasets[cell.category], "--category", cell.category, "--size", str(self.size), *tiles,
                   "--overlays", str(self.overlays), "--out", self.portable(cell.directory(self.work))]
        shards = self.shards_of(cell)
        if shards:
            command += ["--anomalies", self.portable(shards.directory(self.work))]
        elif cell.generator:
            command += ["--anomalies", self.anomalies[cell.generator]]
        for key, value in self.detector_settings(cell).items():
            command += ["--set", f"{cell.detector}.{key}={value if isinstance(value, str) else json.dumps(value)}"]
        return command

    def detector_settings(self, cell: Cell) -> dict[str, Any]:
        """The cell's seed, then the --set overrides of its detector."""
        return {"seed": cell.seed, **self.overrides.get(cell.detector, {})}

    def asked_config(self, cell: Cell) -> dict[str, Any]:
        """The detector config this matrix asks of ``cell``, as results.json records it."""
        tiles = {"tile": self.tile.shape if self.tile else None,
                 "tile_stride": self.tile_stride.shape if self.tile_stride else None}
        settings = {**{key: value for key, value in tiles.items() if value}, **self.detector_settings(cell)}
        config = make_config(get_detector_class(cell.detector), settings)
        config.record_size(self.size)
        return json.loads(json.dumps(asdict(config)))  # tuples as the lists results.json holds

    def recorded_mismatch(self, unit: Unit, recorded_config: dict[str, Any] | None = None) -> str | None:
        """How a finished unit's recorded settings differ from what this matrix asks of it; None if they agree.

        Shards are compared on size and count, cells on their detector's whole config (``recorded_config``:
        defaults, tiles and --set overrides)."""
        if isinstance(unit, Shards):
            recorded = json.loads((unit.directory(self.work) / "manifest.json").read_text())
            asked: dict[str, Any] = {**self.size.record(), "num_samples": self.count}
        else:
            recorded, asked = recorded_config or {}, self.asked_config(unit)
        for key, value in asked.items():
            if key in recorded and recorded[key] != value:
                return f"{unit.label()}: {key}={recorded[key]} (this run asks {value})"
        return None


def units(matrix: Matrix) -> list[Unit]:
    """Every unit in run order: each generator's shards just before the first cell that trains on them."""
    ordered: dict[Unit, None] = {}
    for cell in matrix.cells():
        shards = matrix.shards_of(cell)
        if shards:
            ordered.setdefault(shards)
        ordered.setdefault(cell)
    return list(ordered)


def pending_units(matrix: Matrix) -> list[Unit]:
    """Unfinished cells, and incomplete shards that an unfinished cell needs, in run order."""
    waiting = {matrix.shards_of(cell) for cell in matrix.cells() if not matrix.done(cell)}
    return [unit for unit in units(matrix)
            if not matrix.done(unit) and (isinstance(unit, Cell) or unit in waiting)]

