"""Foreground masks that keep synthetic anomalies on the object (RealNet's per-class rules)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from synth.errors import SynthError

MORPH_SIZE = 6  # RealNet's MVTec AD closing and opening: skimage square(6)
MIN_FOREGROUND_FRACTION = 0.01
MAX_BORDER_FOREGROUND = 0.05  # "auto": an object leaves (almost) all of the image border to the background
RULES = ("none", "otsu", "otsu-inv", "triangle", "triangle-inv", "auto")
CHANNELS = {"red": 0, "green": 1, "blue": 2}  # or "gray" (the default)

# RealNet's rules (datasets/realnet_dataset.py) by class name; every other category uses "auto" unless
# overridden. A rule is BASE[,channel=C][,close=K][,open=K]: BASE thresholds the grey image (or channel C),
# "-inv" keeps the dark side, then a K x K closing and opening (6 and 6 unless given; 0 skips one).
REALNET_RULES: dict[str, str] = {
    # MVTec AD
    **{c: "none" for c in ("carpet", "leather", "tile", "wood", "cable", "transistor")},
    "pill": "otsu",
    **{c: "triangle" for c in ("hazelnut", "metal_nut", "toothbrush")},
    **{c: "otsu-inv" for c in ("bottle", "capsule", "grid", "screw", "zipper")},
    # VisA
    "capsules": "none",
    **{f"pcb{i}": "triangle,channel=blue,close=8,open=3" for i in range(1, 5)},
    **{c: "otsu,close=3,open=3" for c in ("candle", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2",
                                           "pipe_fryum")},
    # MPDD (closing only)
    **{c: "otsu-inv,channel=green,open=0" for c in ("bracket_black", "bracket_brown", "connector")},
    **{c: "otsu,channel=blue,open=0" for c in ("bracket_white", "tubes")},
    "metal_plate": "otsu-inv,open=0",
    # BTAD
    "02": "none",
    **{c: "otsu,close=15,open=6" for c in ("01", "03")},
}


@dataclass(frozen=True)
class ForegroundRule:
    """A parsed foreground rule (see ``REALNET_RULES`` for the text form)."""

    base: str
    channel: str = "gray"
    close: int = MORPH_SIZE
    open: int = MORPH_SIZE


def parse_rule(rule: str) -> ForegroundRule:
    """``otsu-inv,channel=green,open=0`` -> ForegroundRule; a SynthError names what is wrong."""
    base, *options = [part.strip() for part in str(rule).split(",")]
    if base not in RULES:
        raise SynthError(f"unknown foreground rule {rule!r}; choose from {', '.join(RULES)} "
                         "(optionally followed by ,channel=red|green|blue ,close=K ,open=K)")
    fields: dict[str, str | int] = {}
    for option in options:
        key, _, value = option.partition("=")
        if key == "channel" and value in CHANNELS:
            fields[key] = value
        elif key in ("close", "open") and value.isdigit() and int(value) <= 64:
            fields[key] = int(value)
        else:
            raise SynthError(f"foreground rule {rule!r}: bad option {option!r} "
                             "(channel=red|green|blue, close=K, open=K with 0 <= K <= 64)")
    return ForegroundRule(base, **fields)  # type: ignore[arg-type]


def check_rule(rule: str | None) -> str | None:
    """A foreground rule, validated; None stays None."""
    if rule is not None:
        parse_rule(rule)
    return rule


def default_rule(category: str) -> str:
    """The foreground rule of a category: RealNet's for its MVTec AD, VisA, MPDD and BTAD classes, else automatic."""
    return REALNET_RULES.get(category, "auto")


def _morphology(binary: np.ndarray, close: int, open_: int) -> np.ndarray:
    if close:
        binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, np.ones((close, close), np.uint8))
    if open_:
        binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, np.ones((open_, open_), np.uint8))
    return binary


def _threshold(gray: np.ndarray, method: int, inverted: bool, close: int = MORPH_SIZE,
               open_: int = MORPH_SIZE) -> np.ndarray:
    kind = cv2.THRESH_BINARY_INV if inverted else cv2.THRESH_BINARY
    _, binary = cv2.threshold(gray, 0, 255, kind | method)
    return _morphology(binary, close, open_)


def _auto(gray: np.ndarray) -> np.ndarray:
    """OTSU with the polarity that makes the image border mostly background; the whole image if neither
    polarity gives a plausible object: one that covers 5-95 % of the image and leaves at least 95 % of
    the border to the background. A surface or texture that fills the frame (its bright and dark
    parts both reach the border) is all foreground, not split into speckles."""
    binary = _threshold(gray, cv2.THRESH_OTSU, inverted=False)
    border = np.concatenate([binary[0], binary[-1], binary[:, 0], binary[:, -1]])
    if border.mean() > 127:
        binary, border = 255 - binary, 255 - border
    fraction = binary.mean() / 255
    if not 0.05 <= fraction <= 0.95 or border.mean() / 255 > MAX_BORDER_FOREGROUND:
        return np.full_like(gray, 255)
    return binary


def foreground_mask(image: np.ndarray, rule: str) -> np.ndarray:
    """HxW uint8 {0, 255} foreground of an RGB image under ``rule`` (see ``RULES`` and ``REALNET_RULES``).

    An (almost) empty result falls back to the whole image so that anomalies can always be placed.
    """
    parsed = parse_rule(rule)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if parsed.base == "none":
        return np.full_like(gray, 255)
    if parsed.base == "auto":
        mask = _auto(gray)
    else:
        channel = gray if parsed.channel == "gray" else np.ascontiguousarray(image[..., CHANNELS[parsed.channel]])
        method = cv2.THRESH_OTSU if parsed.base.startswith("otsu") else cv2.THRESH_TRIANGLE
        mask = _threshold(channel, method, parsed.base.endswith("-inv"), parsed.close, parsed.open)
    if mask.mean() / 255 < MIN_FOREGROUND_FRACTION:
        return np.full_like(gray, 255)
    return mask
