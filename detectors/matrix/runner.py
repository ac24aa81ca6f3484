"""Running a matrix: each unfinished unit as a subprocess, one progress bar with the time left.

A unit that fails leaves its last error line beside its folder and the run goes on; the cells that
needed a failed generation are skipped with its error. Running again resumes: finished cells are never
refitted, an interrupted generation continues (``--resume``), an interrupted cell starts over.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from detectors.matrix.engine import Cell, Matrix, Shards, Unit, beside, pending_units, units
from detectors.matrix.results import keep_record, recorded_seconds

LOG = "log.txt"  # every command's output, under the work folder
Run = Callable[[list[str]], "str | None"]  # runs a command; None on success, else why it failed


@dataclass
class Runner:
    """Runs commands in ``root`` and appends their output to ``log``."""

    log: Path
    root: Path

    def __call__(self, command: list[str]) -> str | None:
        """None on success, else the last error line."""
        result = subprocess.run([sys.executable, *command[1:]] if command[0] == "python" else command,
                                capture_output=True, text=True, cwd=self.root)
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


def run_matrix(matrix: Matrix, run: Run | None = None) -> list[str]:
    """Run every unfinished unit with a progress bar over all units and an estimate of the time left;
    the units that failed, with their errors."""
    run = run or Runner(matrix.work / LOG, matrix.root)
    every = units(matrix)
    pending = pending_units(matrix)
    seconds = recorded_seconds(matrix, every)
    failed: dict[Shards, str] = {}
    problems = []
    bar_format = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
    with tqdm(total=len(every), initial=len(every) - len(pending), bar_format=bar_format, mininterval=5) as bar:
        for index, unit in enumerate(pending):
            bar.set_description(unit.label())
            bar.set_postfix_str(f"left ≈ {time_left(pending[index:], seconds)}")
            shards = matrix.shards_of(unit) if isinstance(unit, Cell) else None
            error = failed[shards] if shards in failed else execute(matrix, unit, run)
            if error and isinstance(unit, Shards):
                failed[unit] = error
            if error:
                problems.append(f"{unit.label()}: {error}")
                bar.write(f"missing {unit.label()}: {error}", file=sys.stderr)
            else:
                seconds.update(recorded_seconds(matrix, [unit]))
                keep_record(matrix, unit)
            bar.update()
    return problems
