"""The dataset card (README.md with YAML the Hub and `datasets` read) and the manifest."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import datasets
import yaml

from synth.shards.writer import DATA_DIR, SPLIT

MANIFEST = "manifest.json"
CARD = "README.md"


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(temporary, path)


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


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


def write_card(out_dir: Path, manifest: dict[str, Any], features: datasets.Features, num_rows: int,
               num_bytes: int) -> None:
    """README.md with the `configs`/`dataset_info` YAML that `datasets.load_dataset(dir)` and the Hub use."""
    info = {
        "features": features._to_yaml_list(),
        "splits": [{"name": SPLIT, "num_bytes": num_bytes, "num_examples": num_rows}],
        "download_size": num_bytes,
        "dataset_size": num_bytes,
    }
    header = {
        "configs": [{"config_name": "default",
                     "data_files": [{"split": SPLIT, "path": f"{DATA_DIR}/{SPLIT}-*.parquet"}]}],
        "dataset_info": info,
        "tags": ["synthetic", "anomaly-detection", "industrial-inspection", manifest["generator"]],
        "task_categories": ["image-segmentation"],
    }
    hub_license = hub_license_id(manifest.get("source_license") or "")
    if hub_license:
        header["license"] = hub_license
    params = json.dumps(manifest.get("generator_params", {}), indent=2, sort_keys=True, default=str)
    body = f"""# {manifest['category']} — {manifest['generator']} synthetic anomalies

Made with [synth](https://github.com/synth-anomaly/synth) {manifest['version']}.

- Generator: `{manifest['generator']}`
- Source category: `{manifest['category']}` from `{manifest['data'] or 'scikit-image (embedded photo)'}` ({manifest['layout']} layout)
- Source licence: {manifest.get('source_license') or 'see the source dataset'}
- Rows: {num_rows} ({manifest['num_shards']} shards), image size {manifest['size']}x{manifest['size']}, seed {manifest['seed']}
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
    text = "---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n\n" + body
    path = Path(out_dir) / CARD
    temporary = path.with_name(f".{CARD}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
