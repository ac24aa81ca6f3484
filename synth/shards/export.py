"""Export a synth dataset as image folders that other tools read.

``mvtec``: the MVTec AD layout, so every tool that reads MVTec AD (anomalib's MVTec and Folder
datamodules among them) can train or evaluate on synth anomalies::

    OUT/CATEGORY/test/GENERATOR/000.png             anomalous images (rows with an empty mask: test/good)
    OUT/CATEGORY/ground_truth/GENERATOR/000_mask.png
    OUT/CATEGORY/train/good/000.png                 the category's normal images (--data or built-in)

``folder``: ``OUT/images/000.png`` beside ``OUT/masks/000.png`` (same names), plus ``OUT/normal/``.

Images and masks are the dataset's PNG bytes, written unchanged: pixel for pixel the dataset's.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import pyarrow.parquet as pq

from synth.data import BUILTIN_CATEGORIES, ImageSize, load_category
from synth.data.images import decode_bytes
from synth.errors import SynthError
from synth.safety.locking import entries, output_lock
from synth.safety.names import safe_name
from synth.shards.card import read_manifest, verify_dataset
from synth.shards.writer import encode_png

FORMATS = ("mvtec", "folder")
NORMAL = "good"
COLUMNS = ["image", "mask", "index", "generator"]


@dataclass
class ExportCounts:
    """What an export wrote."""

    anomalous: int = 0
    normal: int = 0  # rows whose mask is empty (e.g. `normal`, `cutpaste-3way`'s untouched class)
    masks: int = 0
    train: int = 0  # normal training images of the category


def complete_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of a complete synth dataset; an error for anything else."""
    manifest = read_manifest(Path(directory))
    if manifest is None:
        raise SynthError(f"{directory} is not a synth dataset (no readable manifest.json)")
    if not manifest.get("complete"):
        raise SynthError(f"{directory} is incomplete; finish it with `synth gen ... --resume` first")
    return manifest


def dataset_rows(directory: Path, manifest: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The image, mask, index and generator of every row of a complete dataset, shard by shard."""
    for shard in verify_dataset(Path(directory), manifest):
        for batch in pq.ParquetFile(shard).iter_batches(batch_size=64, columns=COLUMNS):
            yield from batch.to_pylist()


def is_empty_mask(cell: dict[str, Any] | None) -> bool:
    """Whether a mask cell holds a mask with no anomalous pixel (None, a raw SDAS image, is not empty)."""
    if cell is None:
        return False
    mask = decode_bytes(cell["bytes"], cv2.IMREAD_GRAYSCALE)
    return mask is not None and not mask.any()


def folder_name(name: str) -> str:
    """``name`` (a category or generator read from the dataset) as one safe folder name."""
    return safe_name(name, "category or generator")


class Layout:
    """Where an export puts anomalous images, their masks, untouched rows and training images."""

    def __init__(self, out: Path, fmt: str, category: str, width: int) -> None:
        if fmt not in FORMATS:
            raise SynthError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
        self.mvtec, self.width = fmt == "mvtec", width
        self.base = out / folder_name(category) if self.mvtec else out

    def name(self, index: int) -> str:
        return f"{index:0{self.width}d}"

    def image(self, generator: str, index: int, normal: bool) -> Path:
        if self.mvtec:
            return self.base / "test" / (NORMAL if normal else folder_name(generator)) / f"{self.name(index)}.png"
        return self.base / "images" / f"{self.name(index)}.png"

    def mask(self, generator: str, index: int) -> Path:
        if self.mvtec:
            return self.base / "ground_truth" / folder_name(generator) / f"{self.name(index)}_mask.png"
        return self.base / "masks" / f"{self.name(index)}.png"

    def train(self, index: int) -> Path:
        folder = self.base / "train" / NORMAL if self.mvtec else self.base / "normal"
        return folder / f"{index:03d}.png"


def write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def export_rows(directory: Path, manifest: dict[str, Any], layout: Layout, counts: ExportCounts) -> None:
    """Write every row's image and mask where ``layout`` says."""
    for row in dataset_rows(directory, manifest):
        normal = layout.mvtec and is_empty_mask(row["mask"])
        write_file(layout.image(row["generator"], row["index"], normal), row["image"]["bytes"])
        counts.normal += normal
        counts.anomalous += not normal
        if row["mask"] is not None and not normal:
            write_file(layout.mask(row["generator"], row["index"]), row["mask"]["bytes"])
            counts.masks += 1


def export_normals(layout: Layout, data: Path | None, category: str, size: ImageSize, counts: ExportCounts) -> None:
    """Write the category's normal training images (at the dataset's size) as PNGs."""
    for index, image in enumerate(load_category(data, category, size=size).train_images):
        write_file(layout.train(index), encode_png(image))
        counts.train += 1


def check_new_or_empty(out: Path) -> None:
    """Raise unless ``out`` does not exist or is an empty folder (a writer's lock file aside)."""
    if out.exists() and (not out.is_dir() or entries(out)):
        raise SynthError(f"export folder {out} exists and is not empty; choose a new --out")


def export_dataset(directory: Path, out: Path, fmt: str = "mvtec", data: Path | None = None,
                   category: str | None = None) -> ExportCounts:
    """Write the synth dataset in ``directory`` to the new folder ``out`` in format ``fmt``.

    The category's normal images are added from ``data`` (its root; built-in categories need none).
    Everything is written to a hidden staging folder inside ``out`` and moved into place once all of it
    is written; on failure nothing is left (``out`` is removed again when this call created it).
    """
    directory, out = Path(directory), Path(out)
    manifest = complete_manifest(directory)
    category = category or manifest["category"]
    width = max(3, len(str(manifest["num_samples"] - 1)))
    Layout(out, fmt, category, width)  # checks the format and the category's folder name first
    check_new_or_empty(out)
    with output_lock(out):
        check_new_or_empty(out)
        staging = out / f".export.{os.getpid()}.tmp"
        try:
            layout = Layout(staging, fmt, category, width)
            counts = ExportCounts()
            export_rows(directory, manifest, layout, counts)
            if data is not None or category in BUILTIN_CATEGORIES:
                export_normals(layout, data, category, ImageSize.from_record(manifest), counts)
            for entry in staging.iterdir():
                entry.rename(out / entry.name)
        except OSError as error:
            raise SynthError(f"cannot write the export to {out}: {error.strerror}") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return counts
