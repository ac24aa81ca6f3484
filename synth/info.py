"""What a dataset directory holds: manifest, rows, shards and parameter ranges."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from synth.errors import SynthError
from synth.shards import completed_shards, read_manifest


def dataset_info(directory: Path) -> dict[str, Any]:
    """Summary of a synth dataset directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SynthError(f"{directory} is not a directory")
    manifest = read_manifest(directory)
    shards = completed_shards(directory)
    if manifest is None and not shards:
        raise SynthError(f"{directory} holds no synth dataset (no manifest.json, no data/*.parquet)")
    table = pq.read_table(shards, columns=None).drop_columns(["image", "mask"]) if shards else None
    ranges: dict[str, Any] = {}
    if table is not None:
        for name in table.column_names:
            column = table[name]
            if column.null_count == len(column):
                continue
            if column.type in ("double", "float", "int64", "int32"):
                bounds = pc.min_max(column)
                ranges[name] = [bounds["min"].as_py(), bounds["max"].as_py()]
            elif column.type == "string":
                ranges[name] = sorted(v for v in pc.unique(column).to_pylist() if v is not None)[:10]
    return {
        "directory": str(directory), "generator": (manifest or {}).get("generator"),
        "category": (manifest or {}).get("category"), "complete": (manifest or {}).get("complete", False),
        "expected_rows": (manifest or {}).get("num_samples"), "rows": 0 if table is None else table.num_rows,
        "shards": f"{len(shards)}/{(manifest or {}).get('num_shards', '?')}", "seed": (manifest or {}).get("seed"),
        "columns": ranges,
    }
