"""Recipes: one TOML file per dataset that `synth run` turns into trained models and SDAS datasets."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth.data.layouts import detect_layout
from synth.data.size import ImageSize
from synth.errors import SynthError
from synth.generators import GeneratorSettings
from synth.masks import check_rule
from synth.plan import GenerationPlan
from synth.provenance import path_roles, portable_command
from synth.shards import read_manifest
from synth.strength import parse_strength


@dataclass
class CategoryRecipe:
    name: str
    foreground: str | None = None
    preset: str | None = None
    train_steps: int | None = None


@dataclass
class Recipe:
    name: str
    layout: str | None
    data: Path | None
    size: ImageSize
    num_samples: int
    strength: tuple[float, float]
    sampling_steps: int
    seed: int
    train: dict[str, Any]
    categories: list[CategoryRecipe] = field(default_factory=list)


def load_recipe(path: Path) -> Recipe:
    """Read and check a recipe file."""
    try:
        document = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SynthError(f"recipe {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise SynthError(f"recipe {path} is not valid TOML: {error}") from None
    head, categories = document.get("recipe", {}), document.get("categories", {})
    if not categories:
        raise SynthError(f"recipe {path} lists no [categories.NAME] tables")
    layout = head.get("layout")
    for name, table in categories.items():
        try:
            check_rule(table.get("foreground"))
        except SynthError as error:
            raise SynthError(f"recipe {path}: category {name}: {error}") from None
    return Recipe(
        name=head.get("name", Path(path).stem), layout=None if layout == "builtin" else layout,
        data=Path(head["data"]) if head.get("data") else None, size=ImageSize.coerce(head.get("size", 256)),
        num_samples=int(head.get("num_samples", 10000)), strength=parse_strength(str(head.get("strength", "0.1:0.2"))),
        sampling_steps=int(head.get("sampling_steps", 20)), seed=int(head.get("seed", 0)),
        train=document.get("train", {}),
        categories=[CategoryRecipe(name, c.get("foreground"), c.get("preset"), c.get("train_steps"))
                    for name, c in categories.items()],
    )


def select(recipe: Recipe, only: str | None) -> list[CategoryRecipe]:
    """The recipe's categories, or those named in ``only`` (comma-separated)."""
    if not only:
        return recipe.categories
    wanted = [name.strip() for name in only.split(",") if name.strip()]
    known = {c.name: c for c in recipe.categories}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise SynthError(f"not in recipe {recipe.name}: {', '.join(unknown)}")
    return [known[name] for name in wanted]


def check_data(data: Path | None, categories: list[CategoryRecipe]) -> None:
    """Raise unless ``data`` (when given) is a folder holding each of ``categories``."""
    if data is None:
        return
    if not Path(data).is_dir():
        raise SynthError(f"data directory {data} does not exist")
    for category in categories:
        detect_layout(Path(data), category.name)


def generation_plan(recipe: Recipe, category: CategoryRecipe, data: Path | None, models: Path,
                    out_root: Path, command: Sequence[str]) -> GenerationPlan:
    """The SDAS generation of one category; resumes a dataset that was started before."""
    out = out_root / f"{category.name}-sdas"
    manifest = read_manifest(out)
    settings = GeneratorSettings(foreground=category.foreground, strength=recipe.strength,
                                 extra={"models": str(models), "steps": recipe.sampling_steps})
    return GenerationPlan(generator="sdas", category=category.name, out=out, num_samples=recipe.num_samples,
                          data=data, layout=recipe.layout, size=recipe.size, seed=recipe.seed,
                          settings=settings, resume=manifest is not None, command=command)


def is_finished(plan: GenerationPlan) -> bool:
    manifest = read_manifest(plan.out)
    return bool(manifest and manifest.get("complete"))


def run_recipe(recipe: Recipe, data: Path | None, models: Path, out_root: Path, only: str | None = None,
               dry_run: bool = False, command: Sequence[str] = (), echo=print) -> None:
    """Train each selected category's missing model, then write (or finish) its SDAS dataset.

    ``command`` is the command line, word by word; what is recorded has its local paths replaced.
    """
    from synth.diffusion.models import find_model
    from synth.plan import run_plan

    data = data or recipe.data
    categories = select(recipe, only)
    check_data(data, categories)
    for category in categories:
        try:
            model = find_model(category.name, root=models)
            training = None
        except SynthError:
            model = models / category.name
            training = _train_options(recipe, category, data, model, portable_command(command, path_roles(recipe.layout)))
        plan = generation_plan(recipe, category, data, models, out_root, command)
        if training is not None:
            echo(f"{category.name}: train {training.preset} for {training.steps} steps -> {model}"
                 + (" (resuming)" if training.resume else ""))
            if not dry_run:
                from synth.diffusion.train import train

                train(training)
        else:
            echo(f"{category.name}: model {model}")
        if is_finished(plan):
            echo(f"{category.name}: dataset {plan.out} is complete")
            continue
        echo(f"{category.name}: generate {plan.num_samples} SDAS images -> {plan.out}"
             + (" (resuming)" if plan.resume else ""))
        if not dry_run:
            run_plan(plan)


def _train_options(recipe: Recipe, category: CategoryRecipe, data: Path | None, out: Path, command: str):
    from synth.diffusion.train import CHECKPOINT_NAME, TrainOptions

    return TrainOptions(out=out, category=category.name, preset=category.preset or recipe.train.get("preset", "tiny"),
                        steps=int(category.train_steps or recipe.train.get("steps", 1000)), data=data,
                        layout=recipe.layout, batch_size=recipe.train.get("batch_size"),
                        resume=(out / CHECKPOINT_NAME).is_file(), command=command)
