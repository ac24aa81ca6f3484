"""The dataset directory before a run: new, resumed or overwritten; never losing a file synth did not write."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synth.errors import SynthError
from synth.shards.card import MANIFEST, dataset_files, read_manifest, verify_dataset
from synth.shards.writer import DATA_DIR, temporary_files


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


def remove_dataset(out: Path) -> list[Path]:
    """Delete the dataset synth wrote in ``out`` (card, manifest, shards, temporary files) and nothing
    else; a non-empty directory without a synth manifest is refused. Returns the files deleted."""
    previous = read_manifest(out)
    if previous is None:
        if visible_entries(out):
            raise SynthError(f"{out} holds no synth dataset (no readable {MANIFEST}); --overwrite only replaces "
                             "a synth dataset: choose another --out")
        return []
    removed = written_files(out, previous)
    for path in removed:
        path.unlink()
    data = out / DATA_DIR
    if data.is_dir() and not data.is_symlink() and not any(data.iterdir()):
        data.rmdir()
    return removed


def check_resumable(out: Path, manifest: dict[str, Any], identity: Sequence[str]) -> None:
    """Raise unless ``out`` holds a run of the same dataset whose finished shards are all its own."""
    previous = read_manifest(out) if out.is_dir() else None
    if previous is None:
        reason = "it does not exist" if not out.exists() else f"no readable {MANIFEST}"
        raise SynthError(f"nothing to resume in {out}: {reason}")
    current = json.loads(json.dumps(manifest, default=str))  # compare as stored (tuples -> lists)
    changed = [key for key in identity if previous.get(key) != current.get(key)]
    if changed:
        raise SynthError(f"cannot resume {out}: it was made with different {', '.join(changed)}")
    verify_dataset(out, previous)


def prepare_directory(out: Path, manifest: dict[str, Any], resume: bool, overwrite: bool,
                      identity: Sequence[str]) -> None:
    """Make ``out`` ready for the run of ``manifest``: resumable, emptied of a previous dataset
    (``overwrite``) or new and empty; stale temporary files of a killed run are removed."""
    if resume:
        check_resumable(out, manifest, identity)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SynthError(f"cannot create output directory {out}: {error.strerror}") from None
    if overwrite:
        remove_dataset(out)
    elif not resume and visible_entries(out):
        raise SynthError(f"output directory {out} is not empty; use --resume to continue or --overwrite to replace it")
    probe = out / ".write-test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise SynthError(f"cannot write to output directory {out}: {error.strerror}") from None
    for path in temporaries(out, manifest):
        path.unlink()
