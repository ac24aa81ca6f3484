"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from synth.data import DEFAULT_CATEGORY
from synth.data.size import MAX_SIDE, MIN_SIDE, SizeParam
from synth.errors import SynthError
from synth.generators import GeneratorSettings
from synth.masks import RULES, check_rule
from synth.pipeline.strength import parse_strength

DEFAULT_GENERATOR = "sdas"


def _compose(*decorators: Callable) -> Callable:
    def apply(function: Callable) -> Callable:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function
    return apply


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip()) if text else ()


def parse_mix(text: str | None) -> dict[str, float]:
    """``normal=0.5,draem=0.25`` -> {"normal": 0.5, "draem": 0.25} (validated by the mix generator)."""
    mix: dict[str, float] = {}
    for part in _split(text):
        name, _, weight = part.partition("=")
        if name.strip() in mix:
            raise click.BadParameter(f"{name.strip()!r} is named twice", param_hint="--mix")
        try:
            mix[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise click.BadParameter(f"weight of {name!r} is not a number: {weight!r}", param_hint="--mix") from None
    return mix


data_options = _compose(
    click.option("--data", type=click.Path(path_type=Path), default=None,
                 help="Dataset root (MVTec AD, MPDD, BTAD, VisA or a folder); omit for the embedded photos."),
    click.option("--category", default=DEFAULT_CATEGORY, show_default=True, help="Category to read."),
    click.option("--layout", default=None, help="mvtec, btad, visa or folder (detected when omitted)."),
    click.option("--size", type=SizeParam(), default="256", show_default=True,
                 help=f"Image size in pixels: a side (256) or HEIGHTxWIDTH (256x512), {MIN_SIDE} to {MAX_SIDE} per side."),
)

def _foreground_rule(_: click.Context, __: click.Parameter, value: str | None) -> str | None:
    try:
        return check_rule(value)
    except SynthError as error:
        raise click.BadParameter(str(error)) from None


generator_options = _compose(
    click.option("--generator", "-g", default=DEFAULT_GENERATOR, show_default=True, help="Generator name."),
    click.option("--s", "strength", default=None, help="SDAS strength: a value (0.15) or a range (0.1:0.2)."),
    click.option("--contrast", "target_contrast", default=None,
                 help="SDAS, instead of --s: the anomalies' change in grey levels, a value (15) or a range (10:20), "
                      "mapped to s through the model's strength response."),
    click.option("--foreground", default=None, callback=_foreground_rule,
                 help=f"Foreground rule: {', '.join(RULES)}, optionally followed by ,channel=red|green|blue "
                      ",close=K ,open=K (default: the category's RealNet rule, else auto)."),
    click.option("--textures", type=click.Path(path_type=Path), default=None, help="Texture root (DTD layout or a folder of images)."),
    click.option("--texture-classes", default=None, help="Comma-separated texture classes to use."),
    click.option("--exclude-texture-classes", default=None, help="Comma-separated texture classes to leave out."),
    click.option("--mix", "mix", default=None, help="Mixture weights for --generator mix, e.g. normal=0.5,draem=0.5."),
    click.option("--model", default=None, help="SDAS: model directory or Hub id [default: found by category]."),
    click.option("--models", type=click.Path(path_type=Path), default=None,
                 help="SDAS: models root holding one directory per category [default: $SYNTH_MODELS or ./models]."),
    click.option("--steps", type=click.IntRange(1), default=None, help="SDAS: sampling steps (respaced) [default: 20]."),
    click.option("--spacing", type=click.Choice(["ddim", "even"]), default=None,
                 help="SDAS: which timesteps --steps keeps: ddim = every (1000/steps)-th from 0, RealNet's "
                      "'ddim20'; even = evenly from 0 to 999 [default: ddim]."),
    click.option("--blend", is_flag=True, default=None, help="SDAS: blend P into normal images through Perlin masks."),
    click.option("--delta", default=None, help="SDAS --blend: opacity range δ [default: 0.5:1.0]."),
    click.option("--s-per-batch", is_flag=True, default=None, help="SDAS: one s per batch, as the official code."),
    click.option("--option", "-o", "extra", multiple=True, help="Generator-specific KEY=VALUE (repeatable)."),
)

SDAS_OPTIONS = ("model", "models", "steps", "spacing", "blend", "delta", "s_per_batch", "target_contrast")


def generator_settings(options: dict[str, Any]) -> GeneratorSettings:
    """Build the generator settings from parsed CLI options."""
    extra = {}
    for item in options.get("extra") or ():
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--option")
        extra[key.strip()] = value
    extra.update({name: options[name] for name in SDAS_OPTIONS if options.get(name) is not None})
    return GeneratorSettings(
        category=options["category"], size=options["size"], foreground=options.get("foreground"),
        textures=options.get("textures"), texture_classes=_split(options.get("texture_classes")),
        exclude_texture_classes=_split(options.get("exclude_texture_classes")),
        strength=parse_strength(options["strength"]) if options.get("strength") is not None else None,
        mix=parse_mix(options.get("mix")), extra=extra,
    )
