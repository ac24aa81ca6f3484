"""A matrix's finished results: read from the work folder or the record, kept, checked and grouped.

Each unit's wall time and last error are kept next to its folder (``seed0.seconds``, ``seed0.error``).
With a record folder, every finished cell's result (metrics, intervals, per-image scores, training
summary, wall time; no machine paths) is also copied there: a cell found there counts as finished,
so the tables survive the loss of the work folder and a later run elsewhere fits only what is missing.
"""

from __future__ import annotations

import json
from typing import Iterable

from detectors.matrix.engine import Cell, Group, Matrix, Shards, Unit, beside, units
from synth.errors import SynthError


def read_cell(matrix: Matrix, cell: Cell) -> dict | None:
    """The cell's result with the test labels and defects, torch thread count and wall time of its run
    (from the work folder, else from the record); None if not finished."""
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


def check_recorded_settings(matrix: Matrix) -> None:
    """Refuse to mix results made with other settings (size, count, tiles, --set) into this matrix."""
    mismatches = [mismatch for unit in units(matrix) if matrix.done(unit)
                  for mismatch in [matrix.recorded_mismatch(unit, recorded_config(matrix, unit))] if mismatch]
    if mismatches:
        more = f" and {len(mismatches) - 1} more" if len(mismatches) > 1 else ""
        shown = matrix.portable(matrix.work) if matrix.work.is_relative_to(matrix.root) else matrix.work
        raise SynthError(f"{shown} holds results made with other settings "
                         f"({mismatches[0]}{more}); use another folder or the settings they were made with")


def recorded_config(matrix: Matrix, unit: Unit) -> dict | None:
    """The detector config a finished cell recorded (None for shards)."""
    return (read_cell(matrix, unit) or {}).get("config", {}) if isinstance(unit, Cell) else None


def recorded_seconds(matrix: Matrix, some: Iterable[Unit]) -> dict[Unit, float]:
    """The wall times kept by earlier runs, beside their folders under the work folder or in the record."""
    seconds = {}
    for unit in some:
        path = beside(unit.directory(matrix.work), "seconds")
        kept = unit.record(matrix.record) if matrix.record and not path.exists() else None
        value = json.loads(kept.read_text()).get("wall_seconds") if kept and kept.exists() else None
        if path.exists() or value is not None:
            seconds[unit] = float(path.read_text()) if path.exists() else value
    return seconds


def scrub(message: str, matrix: Matrix) -> str:
    """A message without this machine's folders: DIR for the work folder, relative paths for the run folder."""
    for folder, placeholder in ((matrix.work, "DIR"), (matrix.root, "."), (matrix.root.parent, "..")):
        message = message.replace(str(folder), placeholder)
    return message


def keep_record(matrix: Matrix, unit: Unit) -> bool:
    """Copy a finished cell's result, or a generation's wall time, into the record unless it is there
    already; whether it was copied."""
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
    path.write_text(scrub(json.dumps(result, indent=1), matrix) + "\n")
    return True


def keep_records(matrix: Matrix) -> int:
    """Copy every unit finished under the work folder but missing from the record; how many were copied."""
    return sum(keep_record(matrix, unit) for unit in units(matrix))


def missing_reason(matrix: Matrix, cell: Cell) -> str:
    """Why an unfinished cell has no results: its own or its shards' last error, else not run yet."""
    for unit in (cell, matrix.shards_of(cell)):
        path = beside(unit.directory(matrix.work), "error") if unit else None
        if path and path.exists():
            return scrub(path.read_text().strip(), matrix)
    return "not run yet"


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
            missing[key] = missing_reason(matrix, cell)
    return groups, {key: reason for key, reason in missing.items() if not groups[key]}


def generation_seconds(matrix: Matrix, category: str, generator: str) -> float | None:
    """Mean wall time of `synth gen` for one generator over the seeds recorded; None without any."""
    times = recorded_seconds(matrix, [Shards(category, generator, seed) for seed in range(matrix.seeds)])
    return sum(times.values()) / len(times) if times else None

