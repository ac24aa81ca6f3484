"""Strength by visibility: the measured strength response, its inversion, and `synth gen --contrast`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from synth.diffusion import TrainOptions, train
from synth.diffusion.model import ModelConfig, build_unet, load_model, save_model
from synth.diffusion.models import BUNDLED_ROOT
from synth.errors import SynthError
from synth.pipeline.recipes import generation_plan, load_recipe
from synth.pipeline.strength import MAX_STRENGTH
from synth.quality.response import (GRID, RESPONSE_NAME, Measurement, StrengthResponse, measure_response,
                                    save_responses, stored_response)
from tests.conftest import run_cli
from tests.test_gen import shard_bytes

STEPS = 2  # sampling steps of every generation here (the response must be measured at the same)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """An untrained 16x16 brick model with its strength response stored at STEPS steps."""
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("models") / "brick"
    save_model(build_unet("micro"), directory, ModelConfig(class_names=["brick"], preset="micro", size=16))
    save_responses(directory, STEPS, "ddim", progress=False)
    return directory


def gen(model: Path, out: Path, *extra) -> tuple[int, str, str]:
    return ["gen", "--category", "brick", "--model", model, "--size", 16, "--steps", STEPS, "--shard-size", 4,
            "--batch-size", 3, "--out", out, *extra]


def response(change: tuple[float, ...]) -> StrengthResponse:
    return StrengthResponse(GRID[:len(change)], change, Measurement(STEPS, "ddim", "fp32", 4, 0))


def test_inversion_is_the_smallest_s_of_the_running_max():
    made = response((0.0, 2.0, 1.5, 4.0, 4.0, 9.0))
    assert made.reach.tolist() == [0.0, 2.0, 2.0, 4.0, 4.0, 9.0]
    assert made.strength_for(0.0) == 0.0
    for k in (1, 3, 5):  # each level the response first reaches maps back to its s
        assert made.strength_for(made.reach[k]) == pytest.approx(GRID[k])
    assert made.strength_for(1.0) == pytest.approx(GRID[1] / 2)
    assert made.strength_for(3.0) == pytest.approx((GRID[2] + GRID[3]) / 2)  # the dip at s = GRID[2] is skipped
    with pytest.raises(SynthError, match="beyond the model's reach"):
        made.strength_for(9.5)


def test_measured_response_starts_at_zero_and_is_stored(model):
    unet, config = load_model(model)
    measured = measure_response(unet, config, "brick", Measurement(STEPS, "ddim", "fp32", 2, 0), False,
                                (0.0, 0.5, 2.0), progress=False)
    assert measured.strengths == (0.0, 0.5, 2.0) and measured.change[0] == 0.0 and measured.change[2] > 0
    stored = stored_response(model, "brick", STEPS, "ddim")
    assert stored.strengths == GRID and stored.strengths[-1] == MAX_STRENGTH and stored.change[0] == 0.0
    assert np.all(np.diff(stored.reach) >= 0) and stored.measurement.count == 32
    assert stored_response(model, "brick", STEPS + 1, "ddim") is None  # other sampler settings: not this one
    assert stored_response(model, "bottle", STEPS, "ddim") is None


def test_contrast_rows_record_target_and_s(model, tmp_path, capsys):
    out = tmp_path / "c"
    status, _, err = run_cli([*gen(model, out), "-n", 8, "--contrast", "5:10"], capsys)
    assert status == 0, err
    table = pq.read_table(out / "data")
    target, s = np.array(table["target_contrast"].to_pylist()), np.array(table["s"].to_pylist())
    assert ((5 <= target) & (target <= 10)).all() and len(set(target)) == 8
    assert ((0 < s) & (s <= MAX_STRENGTH)).all()
    assert (np.argsort(target) == np.argsort(s)).all()  # a larger target, a larger s
    params = json.loads((out / "manifest.json").read_text())["generator_params"]
    stored = stored_response(model, "brick", STEPS, "ddim")
    assert params["contrast"] == [5, 10] and params["strength_response"]["s"] == list(GRID)
    assert params["strength"] == [stored.strength_for(5), stored.strength_for(10)]
    assert run_cli([*gen(model, tmp_path / "again"), "-n", 8, "--contrast", "5:10"], capsys)[0] == 0
    assert shard_bytes(out) == shard_bytes(tmp_path / "again")


def test_a_fixed_contrast_makes_the_images_of_its_s(model, tmp_path, capsys):
    """--contrast C draws from each rng what --s does, so it equals --s s(C) but for the target column."""
    assert run_cli([*gen(model, tmp_path / "c"), "-n", 4, "--contrast", "7"], capsys)[0] == 0
    by_contrast = pq.read_table(tmp_path / "c/data")
    s = stored_response(model, "brick", STEPS, "ddim").strength_for(7.0)
    assert set(by_contrast["s"].to_pylist()) == {s}
    assert run_cli([*gen(model, tmp_path / "s"), "-n", 4, "--s", repr(s)], capsys)[0] == 0
    by_strength = pq.read_table(tmp_path / "s/data")
    assert "target_contrast" not in by_strength.column_names
    assert by_contrast.drop(["target_contrast"]).equals(by_strength)


def test_a_model_without_a_stored_response_is_measured_once(model, tmp_path, capsys, caplog, monkeypatch):
    monkeypatch.setattr("synth.quality.response._MEASURED", {})
    bare = tmp_path / "bare"
    save_model(build_unet("micro"), bare, ModelConfig(class_names=["brick"], preset="micro", size=16))
    with caplog.at_level(logging.WARNING, logger="synth"):
        assert run_cli([*gen(bare, tmp_path / "c"), "-n", 2, "--contrast", "3"], capsys)[0] == 0
    lines = [r.message for r in caplog.records if "strength response" in r.message]
    assert len(lines) == 1 and "measuring it now" in lines[0]
    assert not (bare / RESPONSE_NAME).exists()  # gen does not write into the model directory


@pytest.mark.parametrize("extra, message", [
    (["--contrast", "5", "--s", "0.1"], "exclude each other"),
    (["--contrast", "10:5"], "inverted"),
    (["--contrast", "-2"], "must not be negative"),
    (["--contrast", "300"], "at most 255"),
    (["--contrast", "250"], "asks for more than model brick reaches"),
    (["--contrast", "5", "-o", "t0=200"], "t0"),
    (["--contrast", "5", "--generator", "draem"], "target_contrast (--contrast)"),
])
def test_bad_contrast(model, tmp_path, capsys, extra, message):
    status, _, err = run_cli([*gen(model, tmp_path / "bad"), "-n", 2, *extra], capsys)
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1


def test_recipe_contrast(tmp_path):
    head = '[recipe]\nname = "r"\nlayout = "builtin"\n{}\n[categories.brick]\n'
    (tmp_path / "r.toml").write_text(head.format('contrast = "10:20"'))
    recipe = load_recipe(tmp_path / "r.toml")
    plan = generation_plan(recipe, recipe.categories[0], None, tmp_path / "models", tmp_path, [])
    assert recipe.strength is None and plan.settings.strength is None and plan.settings.extra["target_contrast"] == "10:20"
    (tmp_path / "r.toml").write_text(head.format('contrast = "10:20"\nstrength = "0.1"'))
    with pytest.raises(SynthError, match="exclude each other"):
        load_recipe(tmp_path / "r.toml")
    (tmp_path / "r.toml").write_text(head.format('contrast = "20:10"'))
    with pytest.raises(SynthError, match="inverted"):
        load_recipe(tmp_path / "r.toml")


@pytest.mark.strength_response
def test_training_stores_the_response_and_its_card_table(tmp_path, monkeypatch):
    monkeypatch.setattr("synth.quality.response.COUNT", 2)
    out = tmp_path / "m"
    train(TrainOptions(out=out, category="brick", preset="micro", steps=2, sample_every=100, sample_steps=2,
                       num_samples=2, progress=False))
    stored = stored_response(out, "brick", 20, "ddim")
    assert stored is not None and stored.strengths == GRID and stored.change[0] == 0.0 and stored.measurement.count == 2
    assert "## Strength response" in (out / "README.md").read_text()


@pytest.mark.parametrize("name, category, low, high", [("bottle-compact", "bottle", 0.3, 0.6),
                                                       ("metal_plate-tiny", "metal_plate", 0.1, 0.3),
                                                       ("brick-tiny", "brick", 0.1, 0.3),
                                                       ("magnetic_tile-compact", "magnetic_tile", 0.15, 0.5)])
def test_bundled_models_carry_their_response(name, category, low, high):
    """Stored for the weights they ship with; --contrast 10:20 maps to the s range of docs/generators/sdas.md."""
    stored = stored_response(BUNDLED_ROOT / name, category, 20, "ddim")
    assert stored is not None and stored.strengths == GRID and np.all(np.diff(stored.change) > 0)
    assert low < stored.strength_for(10) < stored.strength_for(20) < high


def test_a_broken_response_file_is_one_line(model, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in model.iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    stored = json.loads((model / RESPONSE_NAME).read_text())
    (broken / RESPONSE_NAME).write_text(json.dumps({**stored, "s": stored["s"][1:]}))
    with pytest.raises(SynthError, match="not a valid strength response"):
        stored_response(broken, "brick", STEPS, "ddim")
