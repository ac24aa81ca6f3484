"""The dataset directory before a run: new, resumed or overwritten; never losing a file synth did not write."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synth.errors import SynthError
from synth.shards.card import MANIFEST, dataset_files, read_manifest, verify_dataset
from synth.shards.writer import DATA_DIR, completed_shards, shard_paths, temporary_files


def visible_entries(directory: Path) -> list[Path]:
    """The entries of ``directory`` that are not hidden."""
    return sorted(p for p in Path(directory).iterdir() if not p.name.startswith("."))


def written_files(out: Path, manifest: dict[str, Any]) -> list[Path]:
    """The files synth wrote for the dataset of ``manifest`` that exist in ``out``, temporary ones included."""
    finals = [out / name for name in dataset_files(manifest)]
    return [p for p in finals if p.is_file() or p.is_symlink()] + temporaries(out, manifest)


def temporaries(out: Path, manifest: dict[str, Any]) -> list[Path]:
    """Hidden temporary files left in ``out`` by a killed run of the dataset of ``manifest``."""
    return [path for name in dataset_files(manifest) for path in temporary_files(out / name)]


def previous_dataset(out: Path) -> dict[str, Any] | None:
    """The manifest of the dataset ``--overwrite`` would replace; a non-empty directory without one is refused."""
    previous = read_manifest(out)
    if previous is None and visible_entries(out):
        raise SynthError(f"{out} holds no synth dataset (no readable {MANIFEST}); --overwrite only replaces "
                         "a synth dataset: choose another --out")
    return previous


def remove_dataset(out: Path, previous: dict[str, Any]) -> list[Path]:
    """Delete the dataset of manifest ``previous`` in ``out`` (card, manifest, shards, temporary files)
    and nothing else. Returns the files deleted."""
    removed = written_files(out, previous)
    try:
        for path in removed:
            path.unlink()
    except OSError as error:
        raise SynthError(f"cannot delete {error.filename}: {error.strerror}") from None
    data = out / DATA_DIR
    if data.is_dir() and not data.is_symlink() and not any(data.iterdir()):
        data.rmdir()
    return removed


def require_directory(out: Path) -> None:
    """Raise unless ``out`` is a directory that a --resume can continue in."""
    if not Path(out).is_dir():
        reason = "it does not exist" if not Path(out).exists() else "it is not a directory"
        raise SynthError(f"nothing to resume in {out}: {reason}")


def check_resumable(out: Path, manifest: dict[str, Any], identity: Sequence[str]) -> None:
    """Raise unless ``out`` holds a run of the same dataset whose finished shards are all its own."""
    require_directory(out)
    previous = read_manifest(out)
    if previous is None:
        raise SynthError(f"nothing to resume in {out}: no readable {MANIFEST}")
    current = json.loads(json.dumps(manifest, default=str))  # compare as stored (tuples -> lists)
    changed = [key for key in identity if previous.get(key) != current.get(key)]
    if changed:
        raise SynthError(f"cannot resume {out}: it was made with different {', '.join(changed)}")
    verify_dataset(out, previous)


def check_inside(out: Path, paths: Sequence[Path]) -> None:
    """Raise when one of ``paths`` (to delete or write) resolves outside ``out``: through a link, say."""
    root = Path(out).resolve()
    for path in paths:
        if not path.resolve().is_relative_to(root):
            raise SynthError(f"{path} leads outside {out} (a link); synth never deletes or writes through a link "
                             "out of the dataset directory: remove the link")


def check_no_stray_shards(out: Path, previous: dict[str, Any] | None) -> None:
    """Raise when ``out/data`` holds a shard-like file that the previous dataset did not write."""
    own = set(shard_paths(previous["num_shards"])) if previous else set()
    stray = [p for p in completed_shards(out) if f"{DATA_DIR}/{p.name}" not in own]
    if stray:
        raise SynthError(f"{stray[0]} is not a shard synth wrote for the dataset in {out}; move it away first")


def check_writable(out: Path) -> None:
    """Raise unless a file can be created in ``out``."""
    probe = out / ".write-test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise SynthError(f"cannot write to output directory {out}: {error.strerror}") from None


def prepare_directory(out: Path, manifest: dict[str, Any], resume: bool, overwrite: bool,
                      identity: Sequence[str]) -> None:
    """Make the existing directory ``out`` ready for the run of ``manifest``: resumable, emptied of a
    previous dataset (``overwrite``) or empty; stale temporary files of a killed run are removed.
    Every check runs before the first file is deleted."""
    if resume:
        check_resumable(out, manifest, identity)
    previous = previous_dataset(out) if overwrite else None
    if not resume and not overwrite and visible_entries(out):
        raise SynthError(f"output directory {out} is not empty; use --resume to continue or --overwrite to replace it")
    touched = [out / DATA_DIR, *(out / name for name in dataset_files(manifest))]
    check_inside(out, touched + (written_files(out, previous) if previous else []) + temporaries(out, manifest))
    if overwrite:
        check_no_stray_shards(out, previous)
    check_writable(out)
    if previous:
        remove_dataset(out, previous)
    for path in temporaries(out, manifest):
        path.unlink()
