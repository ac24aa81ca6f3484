"""Names that become folder names (recipe names, categories, generators) and must stay one folder deep."""

from __future__ import annotations

import re

from synth.errors import SynthError

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def safe_name(name: object, what: str) -> str:
    """``name`` when it is one plain folder name (no ``/``, ``..`` or leading dot), else a SynthError."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise SynthError(f"{what} {name!r} cannot be a folder name: use letters, digits, '.', '_' and '-'")
    return name
