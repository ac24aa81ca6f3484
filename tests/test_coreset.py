"""PatchCore's coreset selections: several picks per pass follow the one-pick-per-pass order; radii are exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import detectors.models.patchcore as patchcore
from detectors import create_detector
from detectors.models.patchcore import CORESET_METHODS, greedy_coreset, project, select_coreset
from synth.errors import SynthError
from tests.conftest import real_data
from tests.test_detectors_models import one_thread  # noqa: F401  (autouse: one torch thread)




def clustered(rows: int = 600, dim: int = 48, seed: int = 0) -> torch.Tensor:
    """Rows around 12 random centres of different spreads (a little like patch features)."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(12, dim, generator=generator) * 4
    spread = torch.rand(12, 1, generator=generator) + 0.2
    which = torch.randint(0, 12, (rows,), generator=generator)
    return centres[which] + torch.randn(rows, dim, generator=generator) * spread[which]


def brute_force_radius(features: torch.Tensor, indices: torch.Tensor, projection_dim: int | None, seed: int) -> float:
    projected = project(features, projection_dim, torch.Generator().manual_seed(seed))
    return torch.cdist(projected.double(), projected[indices].double()).min(1).values.max().item()


def select(features, size, method, projection_dim=32, seed=3):
    return select_coreset(features, size, method, projection_dim, 10, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("pool, per_pass", [(64, 32), (5, 3)])
def test_several_picks_per_pass_follow_the_exact_order(monkeypatch, pool, per_pass):
    monkeypatch.setattr(patchcore, "POOL", pool)
    monkeypatch.setattr(patchcore, "PICKS_PER_PASS", per_pass)
    features = clustered()
    exact = select(features, 90, "greedy-exact")
    batched = select(features, 90, "greedy-fp32")
    assert torch.equal(batched.indices, exact.indices)
    assert batched.passes < exact.passes == 90
    assert batched.radius == pytest.approx(exact.radius, rel=1e-5)
    # greedy_coreset (the former function) is greedy-exact
    assert torch.equal(greedy_coreset(features, 90, 32, 10, torch.Generator().manual_seed(3)), exact.indices)


@pytest.mark.parametrize("method", CORESET_METHODS)
def test_reported_radius_is_the_brute_force_radius(method):
    features = clustered(seed=1)
    coreset = select(features, 60, method)
    assert len(set(coreset.indices.tolist())) == 60
    assert coreset.radius == pytest.approx(brute_force_radius(features, coreset.indices, 32, 3), rel=1e-5)


def test_int8_selection_covers_as_well_as_the_exact_one():
    # The int8 rounding changes which rows are picked, not the coverage: radius within 5 % (stated tolerance).
    for seed in range(3):
        features = clustered(rows=800, dim=64, seed=seed)
        exact, fast = select(features, 80, "greedy-exact", 64), select(features, 80, "greedy-fast", 64)
        assert fast.radius <= exact.radius * 1.05
        assert fast.passes <= 80 // 4


@pytest.mark.parametrize("method", CORESET_METHODS)
def test_every_row_and_duplicate_rows(method):
    features = torch.cat([clustered(rows=40, dim=8), torch.zeros(10, 8)])  # ten identical rows
    everything = select(features, 50, method, projection_dim=None)
    assert sorted(everything.indices.tolist()) == list(range(50))
    assert everything.radius == pytest.approx(0.0, abs=1e-3)
    assert len(set(select(features, 45, method, projection_dim=None).indices.tolist())) == 45


def test_bad_method_and_size():
    with pytest.raises(SynthError, match="unknown coreset method"):
        select_coreset(torch.zeros(4, 2), 2, "kmeans")
    with pytest.raises(SynthError, match="coreset size"):
        select_coreset(torch.zeros(4, 2), 5)
    with pytest.raises(SynthError, match="unknown coreset_method"):
        create_detector("patchcore", coreset_method="fast")


def test_patchcore_fit_reports_its_coreset(capsys):
    from detectors import TrainingSet
    from synth.data import load_category

    assert create_detector("patchcore").config.coreset_method == "greedy-fast"
    assert create_detector("patchcore", paper=True).config.coreset_method == "greedy-fp32"
    detector = create_detector("patchcore", coreset_ratio=0.2)
    detector.fit(TrainingSet(load_category(None, "brick", size=64).train_images[:4]))
    assert detector.coreset.method == "greedy-fast" and len(detector.memory_bank) == len(detector.coreset.indices)
    assert detector.coreset.radius > 0 and "coverage radius" in capsys.readouterr().err


def test_bottle_features_fast_against_exact():
    """Real PatchCore features of 6 bottle images (6 144 patches), 10 % coreset."""
    from synth.data import load_category

    images = load_category(real_data("mvtec"), "bottle", size=256).train_images[:6]
    detector = create_detector("patchcore")
    features = detector.embed(np.stack(images)).reshape(-1, detector.dim)
    size = len(features) // 10
    exact = select_coreset(features, size, "greedy-exact", 128, 10, torch.Generator().manual_seed(0))
    batched = select_coreset(features, size, "greedy-fp32", 128, 10, torch.Generator().manual_seed(0))
    fast = select_coreset(features, size, "greedy-fast", 128, 10, torch.Generator().manual_seed(0))
    assert set(batched.indices.tolist()) == set(exact.indices.tolist())
    assert fast.radius <= exact.radius * 1.05 and fast.passes * 10 < exact.passes
