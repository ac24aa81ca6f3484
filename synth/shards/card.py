"""The dataset card (README.md with YAML the Hub and `datasets` read) and the manifest."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import datasets
import yaml

from synth.data.size import ImageSize
from synth.shards.writer import DATA_DIR, SPLIT, read_shard_metadata, shard_paths, temporary_path, verify_shards

MANIFEST = "manifest.json"
CARD = "README.md"


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place."""
    temporary = temporary_path(Path(path))
    temporary.write_text(text)
    os.replace(temporary, path)


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


DATASET_FORMAT = "synth-dataset/1"  # the manifest's "format": what makes a directory a synth dataset


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    """The synth manifest in ``out_dir``; None when there is none or the file is not synth's."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != DATASET_FORMAT:
        return None
    return manifest if isinstance(manifest.get("num_shards"), int) else None


def dataset_files(manifest: dict[str, Any]) -> list[str]:
    """Every file synth writes for a dataset, relative to its directory: card, manifest, shards."""
    return [CARD, MANIFEST, *shard_paths(manifest["num_shards"])]


def expected_rows(manifest: dict[str, Any]) -> list[int]:
    """The number of rows of each shard."""
    total, size = manifest["num_samples"], manifest["shard_size"]
    return [min(size, total - k * size) for k in range(manifest["num_shards"])]


def manifest_features(manifest: dict[str, Any]) -> datasets.Features:
    """The dataset's features as the manifest records them (the card's ``dataset_info`` list, in column order)."""
    return datasets.Features._from_yaml_list(manifest["features"])


def recorded_features(out_dir: Path, manifest: dict[str, Any]) -> datasets.Features | None:
    """The manifest's features; for a manifest of an older synth (none recorded), those of the first shard."""
    if "features" in manifest:
        return manifest_features(manifest)
    first = next((Path(out_dir) / name for name in shard_paths(manifest["num_shards"])
                  if (Path(out_dir) / name).is_file()), None)
    if first is None:
        return None
    return datasets.Features.from_arrow_schema(read_shard_metadata(first).schema_arrow)


def features_entry(features: datasets.Features) -> list[dict[str, Any]]:
    """``features`` as the manifest records them."""
    return features._to_yaml_list()


def verify_dataset(out_dir: Path, manifest: dict[str, Any]) -> list[Path]:
    """The finished shards of a dataset, each checked against its manifest (columns, row count)."""
    features = recorded_features(out_dir, manifest)
    return [] if features is None else verify_shards(Path(out_dir), features, expected_rows(manifest))


# Licence names as they appear in licence files -> the Hub's licence identifiers.
HUB_LICENSES = {
    "Attribution-NonCommercial-ShareAlike 4.0": "cc-by-nc-sa-4.0",
    "Attribution-NonCommercial 4.0": "cc-by-nc-4.0",
    "Attribution-ShareAlike 4.0": "cc-by-sa-4.0",
    "Attribution 4.0": "cc-by-4.0",
}


def hub_license_id(note: str) -> str | None:
    """The Hub licence id of a source licence note, when it names a known licence."""
    return next((hub for phrase, hub in HUB_LICENSES.items() if phrase in note), None)


def write_card(out_dir: Path, manifest: dict[str, Any]) -> None:
    """README.md with the `configs`/`dataset_info` YAML that `datasets.load_dataset(dir)` and the Hub use.

    Until the dataset is complete the card says so and records the expected number of rows, so that
    `load_dataset` refuses the partial set (its split sizes do not match) instead of returning fewer rows.
    """
    complete = bool(manifest.get("complete"))
    rows = manifest["num_rows"] if complete else manifest["num_samples"]
    size = manifest.get("num_bytes", 0)
    header = {
        "configs": [{"config_name": "default",
                     "data_files": [{"split": SPLIT, "path": f"{DATA_DIR}/{SPLIT}-*.parquet"}]}],
        "dataset_info": {"features": manifest["features"],
                         "splits": [{"name": SPLIT, "num_bytes": size, "num_examples": rows}],
                         "download_size": size, "dataset_size": size},
        "tags": ["synthetic", "anomaly-detection", "industrial-inspection", manifest["generator"]],
        "task_categories": ["image-segmentation"],
    }
    hub_license = hub_license_id(manifest.get("source_license") or "")
    if hub_license:
        header["license"] = hub_license
    text = "---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n\n" + card_body(manifest)
    write_text_atomic(Path(out_dir) / CARD, text)


def card_body(manifest: dict[str, Any]) -> str:
    """The human-readable part of the card."""
    params = json.dumps(manifest.get("generator_params", {}), indent=2, sort_keys=True, default=str)
    status = "" if manifest.get("complete") else (
        "**Incomplete**: not every shard is written yet (or the run was interrupted). `load_dataset` refuses "
        "this directory until `synth gen ... --resume` (the command below plus `--resume`) finishes it.\n\n")
    source = (f"a {manifest['layout']}-layout dataset (`source`: paths relative to its root)"
              if manifest.get("data") else "scikit-image (embedded photo)")
    size = ImageSize.from_record(manifest)
    return f"""# {manifest['category']} — {manifest['generator']} synthetic anomalies

{status}Made with synth {manifest['version']}.

- Generator: `{manifest['generator']}`
- Source category: `{manifest['category']}` from {source}
- Source licence: {manifest.get('source_license') or 'see the source dataset'}
- Rows: {manifest.get('num_rows', 0) if manifest.get('complete') else f"{manifest['num_samples']} planned"} ({manifest['num_shards']} shards), image size {size.height}x{size.width} (height x width), seed {manifest['seed']}
- Command: `{manifest['command']}`

Each row holds the anomalous `image`, its binary `mask` (255 = anomalous), the `source` normal image
it was made from and every random parameter of the generator, so any row can be regenerated from
(`seed`, `index`).

## Generator parameters

```json
{params}
```

## Load

```python
from datasets import load_dataset
ds = load_dataset("path/or/hub-id", split="train")
ds[0]["image"], ds[0]["mask"]
```
"""
