"""Early stopping on a validation score: stop after ``patience`` validations without improvement.

Every detector that validates on held-out synthetic rows uses it, and records what happened as its
``training`` summary (steps run, the cap, the best step, whether a plateau stopped it, the history).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class EarlyStopping:
    """Tracks validation scores (higher is better); ``patience`` 0 never stops early.

    A score improves on the best when it exceeds it by more than ``min_delta``; training stops once
    ``patience`` validations in a row have not improved.
    """

    patience: int = 0
    min_delta: float = 0.0
    best: float = -math.inf
    best_step: int | None = None
    since_best: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    best_seconds: float | None = None  # wall time from creation to the best validation

    def update(self, step: int, score: float) -> bool:
        """Record the score of the model after ``step`` optimiser steps; True if it is the new best."""
        self.history.append((step, float(score)))
        if score > self.best + self.min_delta or self.best_step is None:
            self.best, self.best_step, self.since_best = float(score), step, 0
            self.best_seconds = time.perf_counter() - self.started
            return True
        self.since_best += 1
        return False

    @property
    def plateaued(self) -> bool:
        return self.patience > 0 and self.since_best >= self.patience

    def summary(self, steps: int, max_steps: int) -> dict[str, Any]:
        """What the fit did: steps run, the cap, the best step and score, whether it stopped on a plateau."""
        return {"steps": steps, "max_steps": max_steps, "best_step": self.best_step,
                "best_score": None if self.best_step is None else self.best,
                "stopped_early": self.plateaued and steps < max_steps, "patience": self.patience,
                "best_seconds": None if self.best_seconds is None else round(self.best_seconds, 1),
                "seconds": round(time.perf_counter() - self.started, 1),
                "validations": [[step, round(score, 6)] for step, score in self.history]}
