"""Recipes: one TOML file per dataset that `synth run` turns into trained models and SDAS datasets."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth.data import BUILTIN_CATEGORIES
from synth.data.layouts import detect_layout
from synth.data.size import ImageSize
from synth.diffusion.presets import get_preset
from synth.errors import SynthError
from synth.generators import GeneratorSettings
from synth.masks import check_rule
from synth.pipeline.plan import GenerationPlan
from synth.pipeline.provenance import path_roles, portable_command
from synth.pipeline.strength import parse_contrast, parse_strength
from synth.safety.names import safe_name
from synth.shards import read_manifest


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
    strength: tuple[float, float] | None  # None when the recipe asks for a contrast instead
    sampling_steps: int
    seed: int
    train: dict[str, Any]
    categories: list[CategoryRecipe] = field(default_factory=list)
    contrast: str | None = None  # SDAS --contrast LO:HI (grey levels) instead of a strength


# The keys a recipe may hold, per table; anything else is a typo that would otherwise be ignored.
RECIPE_KEYS = {"recipe": {"name", "layout", "data", "size", "num_samples", "strength", "contrast", "sampling_steps",
                          "seed"},
               "train": {"preset", "steps", "batch_size"}, "categories": None}
CATEGORY_KEYS = {"foreground", "preset", "train_steps"}


def read_document(path: Path) -> dict[str, Any]:
    """The TOML document of a recipe file; one line for a missing, unreadable or invalid file."""
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SynthError(f"recipe {path} does not exist") from None
    except IsADirectoryError:
        raise SynthError(f"recipe {path} is a directory; pass a .toml file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SynthError(f"cannot read recipe {path}: {getattr(error, 'strerror', None) or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise SynthError(f"recipe {path} is not valid TOML: {error}") from None


def check_keys(path: Path, where: str, table: Any, allowed: set[str] | None) -> None:
    """Raise when ``table`` is not a table or (``allowed`` given) holds a key not in ``allowed``."""
    if not isinstance(table, dict):
        raise SynthError(f"recipe {path}: {where} must be a table")
    unknown = sorted(set(table) - allowed) if allowed is not None else []
    if unknown:
        raise SynthError(f"recipe {path}: unknown key {unknown[0]!r} in {where}; known: {', '.join(sorted(allowed))}")


def recipe_size(path: Path, value: Any) -> ImageSize:
    """The recipe's image size: a side or "HxW"; a bad one names the recipe."""
    try:
        return ImageSize.coerce(value)
    except SynthError as error:
        raise SynthError(f"recipe {path}: [recipe] size: {error}") from None


def whole_number(path: Path, where: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an integer of at least ``minimum``, or a SynthError naming the recipe key."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SynthError(f"recipe {path}: {where} must be a whole number of at least {minimum}, got {value!r}")
    return value


def load_recipe(path: Path) -> Recipe:
    """Read and check a recipe file: known keys only, numbers where numbers go, names that stay folder names."""
    document = read_document(path)
    check_keys(path, "the file", document, set(RECIPE_KEYS))
    for table, allowed in RECIPE_KEYS.items():
        check_keys(path, f"[{table}]", document.get(table, {}), allowed)
    head, train, categories = document.get("recipe", {}), document.get("train", {}), document.get("categories", {})
    if not categories:
        raise SynthError(f"recipe {path} lists no [categories.NAME] tables")
    number = {key: whole_number(path, f"[recipe] {key}", head.get(key, default), minimum)
              for key, default, minimum in (("num_samples", 10000, 1), ("sampling_steps", 20, 1),
                                            ("seed", 0, 0))}
    for key in ("steps", "batch_size"):
        if key in train:
            whole_number(path, f"[train] {key}", train[key])
    get_preset(train.get("preset", "tiny"))
    for name, table in categories.items():
        safe_name(name, "recipe category")
        check_keys(path, f"[categories.{name}]", table, CATEGORY_KEYS)
        if table.get("preset") is not None:
            get_preset(table["preset"])
        if table.get("train_steps") is not None:
            whole_number(path, f"[categories.{name}] train_steps", table["train_steps"])
        try:
            check_rule(table.get("foreground"))
        except SynthError as error:
            raise SynthError(f"recipe {path}: category {name}: {error}") from None
    layout = head.get("layout")
    if "strength" in head and "contrast" in head:
        raise SynthError(f"recipe {path}: [recipe] strength and contrast exclude each other: give one")
    contrast = str(head["contrast"]) if "contrast" in head else None
    if contrast is not None:
        parse_contrast(contrast, f"recipe {path}: [recipe] contrast")
    return Recipe(
        name=safe_name(head.get("name", Path(path).stem), "recipe name"), layout=None if layout == "builtin" else layout,
        data=Path(head["data"]) if head.get("data") else None, size=recipe_size(path, head.get("size", 256)),
        num_samples=number["num_samples"],
        strength=None if contrast is not None else parse_strength(str(head.get("strength", "0.1:0.2"))),
        sampling_steps=number["sampling_steps"], seed=number["seed"], train=train,
        categories=[CategoryRecipe(name, c.get("foreground"), c.get("preset"), c.get("train_steps"))
                    for name, c in categories.items()], contrast=contrast,
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
    contrast = {"target_contrast": recipe.contrast} if recipe.contrast is not None else {}
    settings = GeneratorSettings(foreground=category.foreground, strength=recipe.strength,
                                 extra={"models": str(models), "steps": recipe.sampling_steps, **contrast})
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
    from synth.pipeline.plan import run_plan

    data = data or recipe.data
    categories = select(recipe, only)
    check_data(data, categories)
    models_found = [find_or_plan_model(recipe, category, data, models, command) for category in categories]
    for category, (model, training) in zip(categories, models_found):
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


def find_or_plan_model(recipe: Recipe, category: CategoryRecipe, data: Path | None, models: Path,
                       command: Sequence[str]):
    """The category's model directory, and the training that makes it when none is found (else None)."""
    from synth.diffusion.models import find_model

    try:
        return find_model(category.name, root=models), None
    except SynthError:
        if data is None and category.name not in BUILTIN_CATEGORIES:
            raise SynthError(f"{category.name}: no model found under {models} or bundled, and no --data to "
                             "train one on") from None
    model = models / category.name
    return model, _train_options(recipe, category, data, model, portable_command(command, path_roles(recipe.layout)))


def _train_options(recipe: Recipe, category: CategoryRecipe, data: Path | None, out: Path, command: str):
    from synth.diffusion.train import CHECKPOINT_NAME, TrainOptions

    return TrainOptions(out=out, category=category.name, preset=category.preset or recipe.train.get("preset", "tiny"),
                        steps=int(category.train_steps or recipe.train.get("steps", 1000)), data=data,
                        layout=recipe.layout, batch_size=recipe.train.get("batch_size"),
                        resume=(out / CHECKPOINT_NAME).is_file(), command=command)
