"""What a dataset directory holds: manifest, rows, shards and parameter ranges."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from synth.errors import SynthError
from synth.shards import read_manifest, verify_dataset


def dataset_info(directory: Path) -> dict[str, Any]:
    """Summary of a synth dataset directory; each shard is checked against the manifest."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SynthError(f"{directory} is not a directory")
    manifest = read_manifest(directory)
    if manifest is None:
        raise SynthError(f"{directory} holds no synth dataset (no readable manifest.json)")
    shards = verify_dataset(directory, manifest)
    return {
        "directory": str(directory), "generator": manifest.get("generator"), "category": manifest.get("category"),
        "complete": manifest.get("complete", False), "expected_rows": manifest.get("num_samples"),
        "rows": sum(pq.ParquetFile(p).metadata.num_rows for p in shards),
        "shards": f"{len(shards)}/{manifest.get('num_shards', '?')}", "seed": manifest.get("seed"),
        "columns": column_ranges(shards),
    }


def column_ranges(shards: list[Path]) -> dict[str, Any]:
    """Per parameter column: [min, max] of numbers, or up to ten distinct strings."""
    if not shards:
        return {}
    names = [name for name in pq.read_schema(shards[0]).names if name not in ("image", "mask")]
    table = pq.read_table(shards, columns=names)
    ranges: dict[str, Any] = {}
    for name in table.column_names:
        column = table[name]
        if column.null_count == len(column):
            continue
        if column.type in ("double", "float", "int64", "int32"):
            bounds = pc.min_max(column)
            ranges[name] = [bounds["min"].as_py(), bounds["max"].as_py()]
        elif column.type == "string":
            ranges[name] = sorted(v for v in pc.unique(column).to_pylist() if v is not None)[:10]
    return ranges
