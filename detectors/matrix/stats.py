"""Numbers over a cell's seeds: mean ± spread, averaged intervals, steps, and the two-level verdicts.

A verdict compares the seed-averaged image AUROC of two groups of runs on one test set with a
two-level bootstrap (test images, then each side's seeds): "A beats B" only when the 95 % interval of
the difference excludes 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from detectors.matrix.engine import Group
from detectors.evaluation.metrics import Difference as MetricDifference
from detectors.evaluation.metrics import paired_difference_interval_over_seeds


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


def mean_interval(results: Sequence[dict], key: str) -> tuple[float, float] | None:
    """The seeds' bootstrap intervals over test images, their bounds averaged; None where none were written."""
    bounds = [r["intervals"][key] for r in results if (r.get("intervals") or {}).get(key)]
    if not bounds:
        return None
    low, high = np.mean(bounds, axis=0)
    return float(low), float(high)


def interval(results: Sequence[dict], key: str) -> str:
    """``mean_interval`` as text: "[0.600, 0.800]", "–" without one."""
    bounds = mean_interval(results, key)
    return "–" if bounds is None else f"[{bounds[0]:.3f}, {bounds[1]:.3f}]"


def steps(results: Sequence[dict]) -> str:
    """Optimiser steps each seed ran, and how many stopped at the cap instead of on a validation plateau."""
    trainings = [r.get("training") for r in results]
    if not any(trainings):
        return "–"
    reached = "/".join("–" if t is None else str(t.get("steps", "–")) for t in trainings)
    capped = sum(1 for t in trainings if t and not t.get("stopped_early"))
    return reached + (f" (cap: {capped} of {len(trainings)})" if capped else " (plateau)")


def mean_of(results: Sequence[dict], key: str) -> float | None:
    """Mean of a per-seed number (``fit_seconds``, ``score_seconds``); None where no seed has it."""
    values = [r[key] for r in results if r.get(key) is not None]
    return float(np.mean(values)) if values else None


def seconds_mean(results: Sequence[dict], key: str) -> str:
    value = mean_of(results, key)
    return "–" if value is None else f"{value:.0f}"


@dataclass(frozen=True)
class Difference(MetricDifference):
    """Seed-averaged image AUROC of a minus b, its 95 % two-level bootstrap interval, the seeds per side."""

    seeds: tuple[int, int] = (0, 0)


def difference(runs_a: Sequence[dict], runs_b: Sequence[dict]) -> Difference | str:
    """The two-level bootstrap of a − b, or why it cannot be made (a side without results, no per-image
    scores on one shared test set)."""
    if not runs_a or not runs_b:
        return "no results"
    labels = [r.get("labels") for r in [*runs_a, *runs_b]]
    scores = [r.get("image_scores") for r in [*runs_a, *runs_b]]
    if any(value is None for value in labels + scores) or any(value != labels[0] for value in labels):
        return "the results lack per-image scores on one shared test set"
    estimate, low, high = paired_difference_interval_over_seeds(
        np.array(labels[0]), [np.array(s) for s in scores[:len(runs_a)]], [np.array(s) for s in scores[len(runs_a):]])
    return Difference(estimate, low, high, (len(runs_a), len(runs_b)))


def compare(name_a: str, runs_a: Sequence[dict], name_b: str, runs_b: Sequence[dict]) -> str:
    """``difference`` in words: who beats whom, the difference and its interval."""
    found = difference(runs_a, runs_b)
    if isinstance(found, str):
        empty = name_a if not runs_a else name_b if not runs_b else None
        return f"not determined ({empty}: no results)" if empty else f"not determined ({found})"
    verdict = (f"{name_a} beats {name_b}" if found.sign > 0 else f"{name_b} beats {name_a}" if found.sign < 0
               else f"no difference shown between {name_a} and {name_b}")
    return (f"{verdict} (image AUROC difference {found.estimate:+.3f}, 95 % interval [{found.low:+.3f}, "
            f"{found.high:+.3f}]; {found.seeds[0]} vs. {found.seeds[1]} seeds)")


def best_cell(category: str, groups: dict[Group, list[dict]], detector: str | None = None) -> tuple[str, str] | None:
    """(generator, detector) with the highest seed-mean image AUROC on ``category`` (of ``detector`` if given)."""
    scored = {(g, d): np.mean(values_of(results, "image_auroc")) for (c, g, d), results in groups.items()
              if c == category and g is not None and detector in (None, d) and values_of(results, "image_auroc")}
    return max(scored, key=scored.get) if scored else None  # type: ignore[arg-type]
