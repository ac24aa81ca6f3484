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

BASE_COLUMNS: dict[str, str] = {
    "index": "int64", "seed": "int64", "source": "string", "category": "string", "generator": "string",
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
        temporary = final.with_name(f".{final.name}.{os.getpid()}.tmp")
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
    """The finished shard files of a dataset directory, in order."""
    directory = Path(out_dir) / DATA_DIR
    return sorted(directory.glob(f"{SPLIT}-*.parquet")) if directory.is_dir() else []
