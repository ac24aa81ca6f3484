"""`synth score`: colour error, KID and its floor, diversity, ε slopes; finite numbers on tiny inputs."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from synth.cli import main
from synth.diffusion.schedule import Schedule
from synth.errors import SynthError
from synth.quality.score import RealImages, block_products, colour_error, diversity, epsilon_slopes, kid


def test_colour_error_against_the_nearest_real_mean_colour():
    real = np.stack([np.full((4, 4, 3), v, np.uint8) for v in (100, 110, 120)])
    fake = np.stack([np.full((4, 4, 3), (104, 104, 104), np.uint8), np.full((4, 4, 3), (130, 110, 110), np.uint8)])
    scores = colour_error(fake, real, margin=3)
    # image 0: nearest real mean 100 -> 4; image 1: nearest (Euclidean) is 120 -> (10 + 10 + 10) / 3
    assert scores["colour_error"] == pytest.approx((4 + 10) / 2)
    assert scores["inside_colour_range"] == 0.5  # 130 > 120 + 3
    assert colour_error(real, real)["colour_error"] == 0


def test_kid_is_near_zero_for_two_halves_of_the_same_images_and_large_for_different_ones():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, 16))
    same, same_std = kid(features[:200], features[200:], subset_size=100, num_subsets=20)
    other, _ = kid(features[:200], rng.normal(loc=1.0, size=(200, 16)), subset_size=100, num_subsets=20)
    assert np.isfinite([same, same_std, other]).all()
    assert abs(same) < 3 * same_std + 0.02
    assert other > 20 * max(abs(same), same_std)
    with pytest.raises(SynthError, match="at least 2"):
        kid(features[:1], features)


def slopes_of(predicted: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
    return {scale: ab / bb for scale, (ab, bb) in block_products(predicted, true).items()}


def test_diversity_and_slopes():
    assert diversity(np.ones((5, 3))) == pytest.approx(0.0)
    assert diversity(np.eye(4)) == pytest.approx(1.0)
    true = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert all(v == pytest.approx(1.0) for v in slopes_of(true, true).values())
    # a prediction that misses the image mean: slope 1 at fine scales, 0 for the mean
    centred = true - true.mean(dim=(2, 3), keepdim=True)
    slopes = slopes_of(centred, true)
    assert slopes["mean"] == pytest.approx(0.0, abs=1e-6)
    assert slopes["1"] > 0.9
    assert list(slopes) == ["1", "2", "4", "8", "mean"]


class OracleUNet(torch.nn.Module):
    """Predicts the exact ε of x_t from the known x0, optionally without its image mean."""

    def __init__(self, x0: torch.Tensor, centred: bool) -> None:
        super().__init__()
        self.x0, self.centred, self.device = x0, centred, torch.device("cpu")
        self.alphas = Schedule.linear().alphas_cumprod

    def forward(self, x_t, t, class_labels=None):
        alpha = self.alphas[t].reshape(-1, 1, 1, 1)
        epsilon = (x_t - alpha.sqrt() * self.x0) / (1 - alpha).sqrt()
        if self.centred:
            epsilon = epsilon - epsilon.mean(dim=(2, 3), keepdim=True)
        return SimpleNamespace(sample=torch.cat([epsilon, epsilon], dim=1))  # learned variance: 6 channels


@pytest.mark.parametrize("centred", [False, True])
def test_epsilon_slopes_pool_draws_and_report_their_spread(centred):
    images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    x0 = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    config = SimpleNamespace(num_train_timesteps=1000, num_classes=0)
    slopes = epsilon_slopes(OracleUNet(x0, centred), config, RealImages(images, np.zeros((4, 1))), (100, 999), draws=3)
    assert list(slopes) == ["100", "999"]
    for row in slopes.values():
        assert row["1"] == pytest.approx(1.0, abs=0.02 if centred else 1e-4)
        assert row["mean"] == pytest.approx(0.0 if centred else 1.0, abs=1e-4)
        assert row["mean_std"] == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize("threads", [1])
def test_score_cli_on_a_tiny_dataset_and_the_real_floor(tmp_path, threads, monkeypatch):
    torch.set_num_threads(threads)
    monkeypatch.setattr("synth.quality.score.FEATURE_SIZE", 64)  # small backbone inputs keep the test fast
    dataset = tmp_path / "grass-cutpaste"
    with pytest.raises(SystemExit) as done:
        main(["gen", "--generator", "cutpaste", "--category", "grass", "--size", "32", "-n", "12",
              "--out", str(dataset)])
    assert done.value.code == 0
    out = tmp_path / "score"
    with pytest.raises(SystemExit) as done:
        main(["score", str(dataset), "-n", "12", "--out", str(out)])
    assert done.value.code == 0
    report = json.loads((out / "score.json").read_text())
    group = report["groups"]["cutpaste"]
    assert group["n"] == 12 and report["category"] == "grass"
    values = [group["colour_error"], group["kid"], group["kid_std"], group["diversity"], report["real"]["kid_halves"]]
    assert np.isfinite(values).all()
    assert abs(report["real"]["kid_halves"]) < abs(group["kid"]) + 3 * report["real"]["kid_halves_std"] + 1
    assert "| cutpaste | 12 |" in (out / "score.md").read_text()
    with pytest.raises(SystemExit) as done:  # an existing score is not replaced silently
        main(["score", str(dataset), "-n", "12", "--out", str(out)])
    assert done.value.code == 2


def test_model_score_reports_the_change_from_s0_per_strength(tmp_path, monkeypatch):
    from synth.diffusion.model import ModelConfig, build_unet, save_model
    from synth.quality.score import report_markdown, score_model

    torch.set_num_threads(1)
    monkeypatch.setattr("synth.quality.score.FEATURE_SIZE", 64)
    torch.manual_seed(0)
    save_model(build_unet("micro"), tmp_path / "brick", ModelConfig(class_names=["brick"], preset="micro", size=16))
    report = score_model(tmp_path / "brick", "brick", None, None, [0.5, 0.0, 4.0], 4, 3, "ddim", progress=False)
    change = {name: group["contrast"]["inside"] for name, group in report["groups"].items()}
    assert change["s=0"] == 0 < change["s=0.5"] < change["s=4"], change
    assert report["groups"]["s=4"]["contrast"]["area"] == 1.0  # the whole image
    assert "| s=0 | 4 |" in report_markdown(report) and "| 0.0 | 0% |" in report_markdown(report)


def test_dataset_contrast_inside_the_masks(tmp_path):
    import cv2

    from synth.quality.contrast import dataset_rows, summarize

    data = tmp_path / "data" / "parts"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(6):
        cv2.imwrite(str(data / f"{k}.png"), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    out = tmp_path / "parts-cutpaste"
    with pytest.raises(SystemExit) as done:
        main(["gen", "--generator", "cutpaste", "--data", str(tmp_path / "data"), "--category", "parts",
              "--size", "32", "-n", "5", "--out", str(out)])
    assert done.value.code == 0
    figures = summarize(dataset_rows(out, tmp_path / "data"))
    assert figures["rows"] == 5 and figures["masked"] == 1.0 and 0 < figures["area"] < 1
    assert figures["inside"] > 20 and figures["outside"] == 0.0  # pasted noise on noise; nothing else changed
    assert summarize(dataset_rows(out, tmp_path / "data", limit=2))["rows"] == 2
