"""Provenance that is safe to publish, made in one place for rows, manifests and cards.

Nothing here records a local absolute path (normal images are named relative to the data root by the
readers, ``Category.train_ids``): the command line has its local paths replaced by their role (``--data <mvtec root>``), and a model is
named by a portable id (``synth/brick-tiny``, a Hub repo id or its directory name) plus the sha256
of its weights.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

HUB_CACHE_PREFIX = "models--"  # huggingface_hub's cache folder of a model repo: models--OWNER--NAME
LOCAL_PATH = "local path"

# Options of the command lines whose values are local paths, and the role that replaces them.
PATH_OPTIONS: dict[str, str] = {
    "--data": "data root", "--textures": "textures root", "--model": "model dir", "--models": "models root",
    "--out": "output dir", "--weights": "weights file", "--anomalies": "synth dataset",
}


def role(name: str) -> str:
    """How a replaced path reads: ``<mvtec root>``."""
    return f"<{name}>"


def data_role(layout: str | None) -> str:
    """The role of a data root: ``mvtec root``, ``visa root``, ... (``data root`` when unknown)."""
    return f"{layout} root" if layout and layout not in ("builtin", "none") else "data root"


def path_roles(layout: str | None = None) -> dict[str, str]:
    """``PATH_OPTIONS`` with the data root named after its layout."""
    return {**PATH_OPTIONS, "--data": data_role(layout)}


def is_local_path(value: str) -> bool:
    """Whether a command-line value names a file or folder on this machine (absolute or existing)."""
    return bool(value) and (Path(value).is_absolute() or Path(value).exists())


def portable_command(argv: Sequence[str], roles: Mapping[str, str] = PATH_OPTIONS) -> str:
    """The command line with the local path after each option in ``roles`` replaced by its role
    (``--data /home/me/mvtec`` -> ``--data '<mvtec root>'``) and any other absolute path by
    ``<local path>``. Hub ids (``--model user/name``) are kept."""
    words: list[str] = []
    pending: str | None = None
    for word in map(str, argv):
        option, equals, value = word.partition("=")
        if pending is not None:
            words.append(role(pending) if is_local_path(word) else word)
            pending = None
        elif word in roles:
            words.append(word)
            pending = roles[word]
        elif equals and option in roles:
            words.append(f"{option}={role(roles[option]) if is_local_path(value) else value}")
        elif equals and Path(value).is_absolute():
            words.append(f"{option}={role(LOCAL_PATH)}")
        else:
            words.append(role(LOCAL_PATH) if Path(word).is_absolute() else word)
    return shlex.join(words)


def portable_value(value: Any, paths: Mapping[str | Path, str]) -> Any:
    """``value`` (nested dicts, lists, strings) with each of ``paths`` (local path -> role) replaced by
    its role, also as a prefix (``/data/dtd/images`` -> ``<textures root>/images``), and any other
    absolute path by ``<local path>``."""
    if isinstance(value, Mapping):
        return {key: portable_value(item, paths) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable_value(item, paths) for item in value]
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str) or not value:
        return value
    for local, name in _path_variants(paths):
        if value == local or value.startswith(local.rstrip("/") + "/"):
            return role(name) + value[len(local.rstrip("/")):]
    return role(LOCAL_PATH) if Path(value).is_absolute() else value


def _path_variants(paths: Mapping[str | Path, str]) -> list[tuple[str, str]]:
    """Each path as given and resolved, longest first (so a nested path wins over its parent)."""
    variants = {(str(variant), name) for path, name in paths.items() if path
                for variant in (Path(path), Path(path).resolve())}
    return sorted(variants, key=lambda item: -len(item[0]))


def model_id(model_dir: str | Path) -> str:
    """A portable name of a model directory: ``synth/<dirname>`` for a model bundled with the package,
    the repo id for a Hub snapshot, else the directory's name."""
    from synth.diffusion.models import BUNDLED_PREFIX, BUNDLED_ROOT

    path = Path(model_dir).resolve()
    if path.is_relative_to(BUNDLED_ROOT):
        return BUNDLED_PREFIX + path.relative_to(BUNDLED_ROOT).parts[0]
    hub = next((part for part in path.parts if part.startswith(HUB_CACHE_PREFIX)), None)
    if hub is not None:
        return hub[len(HUB_CACHE_PREFIX):].replace("--", "/", 1)
    return path.name


@lru_cache(maxsize=16)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file (cached while its size and modification time stay the same)."""
    stat = Path(path).stat()
    return _sha256(Path(path).resolve(), stat.st_size, stat.st_mtime_ns)


def model_provenance(model_dir: str | Path) -> dict[str, str]:
    """``{"id": portable id, "sha256": of its diffusion_pytorch_model.safetensors}``."""
    from synth.diffusion.models import WEIGHTS_NAME

    return {"id": model_id(model_dir), "sha256": file_sha256(Path(model_dir) / WEIGHTS_NAME)}
