"""Telling a Hugging Face Hub id (``owner/name``) from a local path that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def is_hub_id(text: str | Path) -> bool:
    """True when ``text`` reads as ``owner/name`` and names no local file or folder (``./x/y``, ``/x`` never do)."""
    return not Path(text).exists() and HUB_ID.fullmatch(str(text)) is not None
