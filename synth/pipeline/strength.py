"""Value-or-range options (``0.15`` or ``0.1:0.2``): the SDAS strength s or target contrast, the blend factor delta."""

from __future__ import annotations

import math

from synth.errors import SynthError


def parse_range(text: str, option: str, upper: float | None = None) -> tuple[float, float]:
    """Parse ``v`` or ``a:b`` into (lo, hi) with 0 <= lo <= hi (and hi <= ``upper`` when given)."""
    parts = str(text).split(":")
    try:
        if len(parts) not in (1, 2):
            raise ValueError
        values = [float(p) for p in parts]
        if not all(map(math.isfinite, values)):
            raise ValueError
    except ValueError:
        raise SynthError(f"{option} must be a value like 0.15 or a range like 0.1:0.2, got {text!r}") from None
    lo, hi = values[0], values[-1]
    if lo < 0 or hi < 0:
        raise SynthError(f"{option} must not be negative, got {text!r}")
    if lo > hi:
        raise SynthError(f"{option} range {text!r} is inverted: the lower bound comes first")
    if upper is not None and hi > upper:
        raise SynthError(f"{option} must be at most {upper:g}, got {text!r}")
    return lo, hi


MAX_STRENGTH = 10.0  # variance x11; already at s = 1 the bundled bottle model gives coloured noise (docs/generators/sdas.md)


def parse_strength(text: str) -> tuple[float, float]:
    """The SDAS strength s: ``v`` or ``a:b`` with 0 <= a <= b <= ``MAX_STRENGTH``."""
    return parse_range(text, "--s", MAX_STRENGTH)


MAX_CONTRAST = 255.0  # grey levels


def parse_contrast(text: str, option: str = "--contrast") -> tuple[float, float]:
    """The SDAS target contrast in grey levels: ``v`` or ``a:b`` with 0 <= a <= b <= ``MAX_CONTRAST``."""
    return parse_range(text, option, MAX_CONTRAST)


def parse_strength_list(text: str) -> list[float]:
    """``0,0.05,0.1`` -> [0.0, 0.05, 0.1] (each value non-negative), for strength sweeps."""
    values = []
    for part in text.split(","):
        lo, hi = parse_strength(part.strip())
        if lo != hi:
            raise SynthError(f"a strength sweep takes single values, got the range {part!r}")
        values.append(lo)
    return values
