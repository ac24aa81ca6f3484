"""Parquet shards in the Hugging Face layout, written atomically, one row per sample."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synth.errors import SynthError

BASE_COLUMNS: dict[str, str] = {
    "index": "int64", "seed": "int64", "source": "string", "category": "string", "generator": "string",
    "height": "int64", "width": "int64",
}
DATA_DIR = "data"
SPLIT = "train"


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB (HxWx3) or single-channel (HxW) uint8 array, encoded with OpenCV."""
    array = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, buffer = cv2.imencode(".png", array)
    if not ok:
        raise ValueError("PNG encoding failed")
    return buffer.tobytes()


def dataset_features(param_columns: dict[str, str]) -> datasets.Features:
    """The features of a synth dataset: image, mask, provenance and one column per parameter."""
    columns = {**BASE_COLUMNS, **{k: v for k, v in param_columns.items() if k not in BASE_COLUMNS}}
    return datasets.Features({
        "image": datasets.Image(), "mask": datasets.Image(),
        **{name: datasets.Value(dtype) for name, dtype in columns.items()},
    })


def shard_name(shard: int, num_shards: int) -> str:
    return f"{SPLIT}-{shard:05d}-of-{num_shards:05d}.parquet"


def shard_paths(num_shards: int) -> list[str]:
    """The shards' paths inside a dataset directory: ``data/train-00000-of-00010.parquet``, ..."""
    return [f"{DATA_DIR}/{shard_name(k, num_shards)}" for k in range(num_shards)]


def temporary_path(final: Path) -> Path:
    """Where ``final`` is written before it is renamed into place: hidden, per process."""
    return final.with_name(f".{final.name}.{os.getpid()}.tmp")


def temporary_files(final: Path) -> list[Path]:
    """Temporary files of ``final`` that a killed process left behind."""
    return sorted(final.parent.glob(f".{final.name}.*.tmp")) if final.parent.is_dir() else []


class ShardWriter:
    """Writes numbered shards of rows under ``out_dir/data``; each shard appears atomically."""

    def __init__(self, out_dir: Path, features: datasets.Features, num_shards: int):
        self.directory = Path(out_dir) / DATA_DIR
        self.features = features
        self.schema = features.arrow_schema
        self.num_shards = num_shards

    def path(self, shard: int) -> Path:
        return self.directory / shard_name(shard, self.num_shards)

    def done(self, shard: int) -> bool:
        return self.path(shard).is_file()

    def write(self, shard: int, rows: list[dict[str, Any]]) -> Path:
        """Write ``rows`` (images as arrays, masks as arrays or None) to shard number ``shard``."""
        table = pa.Table.from_pylist([self._encode(row) for row in rows], schema=self.schema)
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.path(shard)
        temporary = temporary_path(final)
        pq.write_table(table, temporary, compression="none")
        os.replace(temporary, final)
        return final

    def _encode(self, row: dict[str, Any]) -> dict[str, Any]:
        encoded = {name: row.get(name) for name in self.features}
        encoded["image"] = {"bytes": encode_png(row["image"]), "path": None}
        mask = row.get("mask")
        encoded["mask"] = None if mask is None else {"bytes": encode_png(mask), "path": None}
        return encoded


def completed_shards(out_dir: Path) -> list[Path]:
    """The finished shard files of a dataset directory, in order (unchecked: see ``verify_shards``)."""
    directory = Path(out_dir) / DATA_DIR
    return sorted(directory.glob(f"{SPLIT}-*.parquet")) if directory.is_dir() else []


def verify_shards(out_dir: Path, features: datasets.Features, rows_per_shard: list[int]) -> list[Path]:
    """The finished shards of a dataset whose shard ``k`` holds ``rows_per_shard[k]`` rows of ``features``.

    A shard that is unreadable (truncated), has other columns or another number of rows, and a
    shard-like file that is not one of this dataset's, is an error: it is never silently reused.
    """
    names = [shard_name(k, len(rows_per_shard)) for k in range(len(rows_per_shard))]
    foreign = sorted({p.name for p in completed_shards(out_dir)} - set(names))
    directory = Path(out_dir) / DATA_DIR
    if foreign:
        raise SynthError(f"{directory / foreign[0]} is not a shard of this dataset ({len(names)} shards); move it away")
    finished = [directory / name for name in names if (directory / name).is_file()]
    for path in finished:
        check_shard(path, features, rows_per_shard[names.index(path.name)])
    return finished


def shard_error(path: Path, problem: str) -> SynthError:
    """The error for a damaged or foreign shard, with what to do about it."""
    return SynthError(f"shard {path} {problem}; delete it and run `synth gen ... --resume` again")


def read_shard_metadata(path: Path) -> pq.ParquetFile:
    """The Parquet metadata of a shard; an unreadable (e.g. truncated) file is a ``SynthError``."""
    try:
        return pq.ParquetFile(path)
    except (OSError, pa.ArrowException, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise shard_error(path, f"is unreadable ({reason})") from None


def check_shard(path: Path, features: datasets.Features, rows: int) -> None:
    """Raise ``SynthError`` unless the Parquet file ``path`` holds ``rows`` rows of ``features``."""
    metadata = read_shard_metadata(path)
    if datasets.Features.from_arrow_schema(metadata.schema_arrow) != features:
        raise shard_error(path, "does not belong to this dataset (other columns)")
    if metadata.metadata.num_rows != rows:
        raise shard_error(path, f"holds {metadata.metadata.num_rows} rows, not {rows}")
