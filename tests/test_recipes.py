"""Recipes: the shipped files, category selection and a complete tiny `synth run`."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from synth.data import ImageSize
from synth.errors import SynthError
from synth.masks.foreground import REALNET_RULES, check_rule
from synth.pipeline.recipes import load_recipe, select
from tests.conftest import run_cli

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.mark.parametrize("name, count", [("sia-mvtec", 15), ("sia-visa", 12), ("sia-mpdd", 6), ("sia-btad", 3)])
def test_sia_recipes_cover_realnets_36_categories(name, count):
    recipe = load_recipe(RECIPES / f"{name}.toml")
    assert len(recipe.categories) == count
    assert recipe.size == ImageSize.square(256) and recipe.num_samples == 10000 and recipe.strength == (0.1, 0.2)
    assert recipe.sampling_steps == 20
    assert all(check_rule(c.foreground) == REALNET_RULES.get(c.name, c.foreground) for c in recipe.categories)


def test_select_and_errors(tmp_path):
    recipe = load_recipe(RECIPES / "sia-mvtec.toml")
    assert [c.name for c in select(recipe, "screw,bottle")] == ["screw", "bottle"]
    with pytest.raises(SynthError, match="not in recipe"):
        select(recipe, "carpet,nope")
    (tmp_path / "bad.toml").write_text("[recipe\n")
    with pytest.raises(SynthError, match="not valid TOML"):
        load_recipe(tmp_path / "bad.toml")
    with pytest.raises(SynthError, match="does not exist"):
        load_recipe(tmp_path / "none.toml")


def test_run_trains_missing_model_then_generates_and_resumes(tmp_path, capsys):
    recipe = tmp_path / "micro.toml"
    recipe.write_text('''
[recipe]
name = "micro"
layout = "builtin"
size = 16
num_samples = 4
strength = "0.1:0.2"
sampling_steps = 3

[train]
preset = "micro"
steps = 2
batch_size = 2

[categories.gravel]
foreground = "none"
''')
    args = ["run", recipe, "--models", tmp_path / "models", "--out", tmp_path / "sets"]
    status, stdout, err = run_cli(args, capsys)
    assert status == 0, err
    assert "gravel: train micro for 2 steps" in stdout
    assert pq.read_table(tmp_path / "sets/gravel-sdas/data").num_rows == 4
    status, stdout, _ = run_cli(args, capsys)
    assert status == 0 and "model " in stdout and "is complete" in stdout
