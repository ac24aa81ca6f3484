"""Early stopping on a validation score: stop after ``patience`` validations without improvement.

Every detector that validates on held-out synthetic rows uses it, and records what happened as its
``training`` summary (steps run, the cap, the best step, whether a plateau stopped it, the history).

The score of a model on a few dozen held-out rows moves by a few hundredths from one validation to
the next once training is near its plateau; ``smoothing`` > 1 decides on the mean of the last
``smoothing`` validations, so that such noise neither resets the patience nor counts as progress.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class EarlyStopping:
    """Tracks validation scores (higher is better); ``patience`` 0 never stops early.

    The plateau rule reads the mean of the last ``smoothing`` scores (1: the score itself): it improves
    when it exceeds its best by more than ``min_delta``, and training stops once ``patience``
    validations in a row have not improved it. The checkpoint to keep is the one with the best score.
    """

    patience: int = 0
    min_delta: float = 0.0
    smoothing: int = 1
    best: float = -math.inf  # best single score (the checkpoint kept)
    best_step: int | None = None
    best_smoothed: float = -math.inf
    since_best: int = 0  # validations since the smoothed score last improved
    history: list[tuple[int, float]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    best_seconds: float | None = None  # wall time from creation to the best validation

    def __post_init__(self) -> None:
        if self.smoothing < 1:
            raise ValueError(f"smoothing must be at least 1 validation, not {self.smoothing}")

    def update(self, step: int, score: float) -> bool:
        """Record the score of the model after ``step`` optimiser steps; True if it is the new best."""
        self.history.append((step, float(score)))
        recent = [value for _, value in self.history[-self.smoothing:]]
        smoothed = sum(recent) / len(recent)
        if smoothed > self.best_smoothed + self.min_delta or len(self.history) == 1:
            self.best_smoothed, self.since_best = smoothed, 0
        else:
            self.since_best += 1
        if score > self.best or self.best_step is None:
            self.best, self.best_step = float(score), step
            self.best_seconds = time.perf_counter() - self.started
            return True
        return False

    @property
    def plateaued(self) -> bool:
        return self.patience > 0 and self.since_best >= self.patience

    def summary(self, steps: int, max_steps: int) -> dict[str, Any]:
        """What the fit did: steps run, the cap, the best step and score, whether it stopped on a plateau."""
        return {"steps": steps, "max_steps": max_steps, "best_step": self.best_step,
                "best_score": None if self.best_step is None else self.best,
                "stopped_early": self.plateaued and steps < max_steps, "patience": self.patience,
                "smoothing": self.smoothing,
                "best_seconds": None if self.best_seconds is None else round(self.best_seconds, 1),
                "seconds": round(time.perf_counter() - self.started, 1),
                "validations": [[step, round(score, 6)] for step, score in self.history]}
