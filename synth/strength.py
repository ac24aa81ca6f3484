"""The SDAS strength option: a fixed value ``0.15`` or a uniform range ``0.1:0.2``."""

from __future__ import annotations

from synth.errors import SynthError


def parse_strength(text: str) -> tuple[float, float]:
    """Parse ``v`` or ``a:b`` into (lo, hi) with 0 <= lo <= hi."""
    parts = text.split(":")
    if len(parts) not in (1, 2):
        raise SynthError(f"--s must be a value like 0.15 or a range like 0.1:0.2, got {text!r}")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise SynthError(f"--s must be a value like 0.15 or a range like 0.1:0.2, got {text!r}") from None
    lo, hi = values[0], values[-1]
    if lo < 0 or hi < 0:
        raise SynthError(f"--s must not be negative, got {text!r}")
    if lo > hi:
        raise SynthError(f"--s range {text!r} is inverted: the lower bound comes first")
    return lo, hi


def parse_strength_list(text: str) -> list[float]:
    """``0,0.05,0.1`` -> [0.0, 0.05, 0.1] (each value non-negative), for strength sweeps."""
    values = []
    for part in text.split(","):
        lo, hi = parse_strength(part.strip())
        if lo != hi:
            raise SynthError(f"a strength sweep takes single values, got the range {part!r}")
        values.append(lo)
    return values
