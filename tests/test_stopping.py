"""Early stopping: the rule itself, and detectors that stop on a validation plateau and not before."""

from __future__ import annotations

import numpy as np
import pytest

from detectors import create_detector, load_detector
from detectors.training.loop import cache_features, normal_counterparts, validate_cached, validate_held_out
from detectors.training.stopping import EarlyStopping
from tests.test_detectors_models import one_thread  # noqa: F401  (autouse: one torch thread)
from tiny_defects import tiny_training_set


def run(stopping: EarlyStopping, scores: list[float]) -> int:
    """Feed validations one by one; the number fed when the rule said stop (all of them if it never did)."""
    for count, score in enumerate(scores, start=1):
        stopping.update(10 * count, score)
        if stopping.plateaued:
            return count
    return len(scores)


def test_stops_after_patience_validations_without_improvement():
    stopping = EarlyStopping(patience=3)
    assert run(stopping, [0.5, 0.6, 0.7, 0.7, 0.69, 0.7, 0.9, 0.95]) == 6
    assert stopping.best == 0.7 and stopping.best_step == 30


def test_does_not_stop_while_improving_or_after_a_short_dip():
    assert run(EarlyStopping(patience=3), [0.1 * i for i in range(1, 11)]) == 10
    stopping = EarlyStopping(patience=3)
    assert run(stopping, [0.5, 0.4, 0.45, 0.6, 0.55, 0.58, 0.7]) == 7  # two bad validations, then better
    assert not stopping.plateaued and stopping.best_step == 70


def test_patience_zero_never_stops_and_min_delta_ignores_tiny_gains():
    assert run(EarlyStopping(patience=0), [0.5] * 20) == 20
    assert run(EarlyStopping(patience=2, min_delta=0.01), [0.5, 0.505, 0.509, 0.6]) == 3


def test_smoothing_ignores_noisy_new_bests_and_keeps_the_best_checkpoint():
    # A flat score with growing noise: every other validation beats the best by more than min_delta,
    # so the rule on single scores never stops; their running mean does not improve.
    noisy = [0.5, 0.7, 0.8] + [0.85 + 0.003 * i if i % 2 == 0 else 0.8 - 0.003 * i for i in range(12)]
    assert run(EarlyStopping(patience=3, min_delta=0.005), noisy) == len(noisy)
    stopping = EarlyStopping(patience=3, min_delta=0.005, smoothing=3)
    stopped = run(stopping, noisy)
    assert stopped < len(noisy) and stopping.plateaued
    assert stopping.best == max(noisy[:stopped]) and stopping.best_step == 10 * (noisy.index(stopping.best) + 1)


def test_smoothing_still_follows_a_steady_rise():
    rising = [0.5 + 0.02 * i + (0.015 if i % 2 else -0.015) for i in range(15)]
    assert run(EarlyStopping(patience=3, min_delta=0.005, smoothing=3), rising) == len(rising)
    with pytest.raises(ValueError, match="smoothing"):
        EarlyStopping(smoothing=0)


def test_summary_says_whether_a_plateau_or_the_budget_ended_training():
    stopping = EarlyStopping(patience=2)
    run(stopping, [0.5, 0.5, 0.5])
    summary = stopping.summary(steps=30, max_steps=100)
    assert summary["stopped_early"] and summary["best_step"] == 10 and len(summary["validations"]) == 3
    assert not EarlyStopping(patience=2).summary(steps=100, max_steps=100)["stopped_early"]


def check_stopped_on_plateau(training: dict, patience: int) -> None:
    """Stopped before its budget, exactly ``patience`` validations after the best one, which it kept."""
    steps, scores = zip(*training["validations"])
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    assert training["stopped_early"] and training["steps"] == steps[-1] < training["max_steps"]
    assert len(scores) - 1 - best == patience and training["best_step"] == steps[best]


def test_realnet_stops_on_a_plateau_and_keeps_the_summary(tmp_path):
    # lr = 0: only BatchNorm statistics move, so validation plateaus long before the 50-epoch budget.
    detector = create_detector("realnet", epochs=50, lr=0.0, disc_width=16, afs_samples=8, batch_size=8,
                               val_every=1, patience=2)
    detector.fit(tiny_training_set(normal=8, anomalies=16))
    check_stopped_on_plateau(detector.training, patience=2)
    detector.save(tmp_path / "model")
    assert load_detector(tmp_path / "model").training == detector.training


def test_simplenet_validates_on_held_out_anomalies_and_stops():
    detector = create_detector("simplenet", hidden=32, max_steps=200, batch_size=4, lr=0.0, dsc_lr=0.0,
                               val_every=2, patience=2)
    detector.fit(tiny_training_set(normal=8, anomalies=24))
    check_stopped_on_plateau(detector.training, patience=2)


def test_simplenet_without_validation_runs_its_budget():
    detector = create_detector("simplenet", hidden=32, max_steps=4, batch_size=4)
    detector.fit(tiny_training_set(normal=8, anomalies=0))
    assert detector.training is None and detector.fitted


@pytest.mark.parametrize("name, settings", [
    ("realnet", {"disc_width": 16, "afs_samples": 8}), ("prn", {}),
])
def test_validation_on_cached_features_matches_validation_on_images(name, settings):
    detector = create_detector(name, epochs=2, batch_size=8, val_every=1, precision="fp32", **settings)
    data = tiny_training_set(normal=8, anomalies=16)
    detector.fit(data)
    sources = normal_counterparts(data)
    held = np.arange(6)
    select = dict(zip(detector.strides, detector.afs.indices())) if name == "realnet" else None
    images = [data.anomalous[i][0] for i in held] + [data.normal[sources[i]] for i in held]
    features = cache_features(detector.backbone, images, detector.strides, 8, select)
    masks = np.stack([data.anomalous[i][1] for i in held] + [np.zeros_like(data.anomalous[0][1])] * len(held))
    cached = validate_cached(detector, features, masks)
    assert 0.0 <= cached <= 1.0
    assert cached == pytest.approx(validate_held_out(detector, data, held, sources), abs=0.02)  # float16 cache


def test_default_schedule_is_a_step_cap_with_plateau_stopping_whatever_the_category_size():
    from detectors.training.loop import DEFAULT_MAX_STEPS, epoch_schedule

    for steps_per_epoch in (5, 27, 113):  # 40, 209 and 900 normal images at 8 per step
        epochs, val_every = epoch_schedule(steps_per_epoch)
        assert DEFAULT_MAX_STEPS <= epochs * steps_per_epoch < DEFAULT_MAX_STEPS + steps_per_epoch
        assert val_every == 1 or abs(val_every * steps_per_epoch - 50) <= steps_per_epoch / 2  # every ~50 steps
    for name in ("realnet", "prn", "simplenet"):
        assert create_detector(name).config.patience > 0  # trains to its plateau by default
        assert create_detector(name, paper=True).config.patience == 0  # the papers' fixed schedules
