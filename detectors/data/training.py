"""Training data for detectors: a category's normal images plus synthetic anomalies from shards.

A synth dataset directory holds Parquet shards ``data/*.parquet`` whose ``image`` and ``mask``
columns are structs {bytes, path} of PNG bytes (the ``datasets`` Image feature); a Hub id is read
with ``datasets.load_dataset``. Batches mix the two with a configurable fraction of anomalous samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synth.data import Category, ImageSize
from synth.data.images import decode_bytes, resize
from synth.errors import SynthError
from synth.hub import is_hub_id

Anomaly = tuple[np.ndarray, np.ndarray]  # (RGB uint8 image, {0, 255} uint8 mask)


@dataclass(frozen=True)
class Batch:
    """Indices into ``TrainingSet.normal`` and ``TrainingSet.anomalous`` that make one batch."""

    normal: np.ndarray
    anomalous: np.ndarray


@dataclass
class TrainingSet:
    """Normal images (RGB uint8, all one size) and optional synthetic anomalies with their masks."""

    normal: list[np.ndarray]
    anomalous: list[Anomaly] = field(default_factory=list)
    anomaly_fraction: float = 0.0  # share of each batch drawn from ``anomalous``

    def __post_init__(self) -> None:
        if not self.normal:
            raise SynthError("no normal training images")
        if not 0.0 <= self.anomaly_fraction < 1.0:
            raise SynthError(f"anomaly fraction must be in [0, 1), got {self.anomaly_fraction}")
        if self.anomaly_fraction > 0 and not self.anomalous:
            raise SynthError("an anomaly fraction above 0 needs anomalous samples (--anomalies DIR)")
        sizes = {image.shape for image in self.normal} | {image.shape for image, _ in self.anomalous}
        if len(sizes) > 1:
            raise SynthError(f"training images differ in size: {sorted(sizes)}")

    @property
    def size(self) -> ImageSize:
        return ImageSize.of(self.normal[0])

    def batches(self, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        """One epoch: every normal image once (shuffled), each batch topped up with random anomalies."""
        num_anomalous = round(batch_size * self.anomaly_fraction) if self.anomalous else 0
        num_normal = max(batch_size - num_anomalous, 1)
        order = rng.permutation(len(self.normal))
        for start in range(0, len(order), num_normal):
            normal = order[start:start + num_normal]
            anomalous = rng.integers(len(self.anomalous), size=num_anomalous) if num_anomalous else np.zeros(0, int)
            yield Batch(normal, anomalous)

    def num_batches(self, batch_size: int) -> int:
        num_anomalous = round(batch_size * self.anomaly_fraction) if self.anomalous else 0
        return math.ceil(len(self.normal) / max(batch_size - num_anomalous, 1))

    def normal_images(self, indices: Sequence[int]) -> np.ndarray:
        return np.stack([self.normal[i] for i in indices]) if len(indices) else self._empty()

    def anomalous_images(self, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Images (B, H, W, 3) and masks (B, H, W) of the anomalous samples at ``indices``."""
        if not len(indices):
            return self._empty(), np.zeros((0, *self.size.shape), np.uint8)
        return (np.stack([self.anomalous[i][0] for i in indices]),
                np.stack([self.anomalous[i][1] for i in indices]))

    def _empty(self) -> np.ndarray:
        return np.zeros((0, *self.size.shape, 3), np.uint8)


def training_set(category: Category, anomalies: Sequence[str | Path] = (), anomaly_fraction: float = 0.0,
                 max_anomalies: int | None = None) -> TrainingSet:
    """The normal images of a loaded category plus anomalies read from synth datasets (dirs or Hub ids)."""
    anomalous = [sample for source in anomalies for sample in read_anomalies(source, category.size, max_anomalies)]
    return TrainingSet(category.train_images, anomalous, anomaly_fraction)


def read_anomalies(source: str | Path, size: ImageSize | int, limit: int | None = None) -> list[Anomaly]:
    """(image, mask) pairs resized to ``size`` (a side: square) from a synth dataset directory or a Hub dataset id."""
    size = ImageSize.coerce(size)
    table = _read_table(source)
    if table.num_rows == 0:
        raise SynthError(f"the shards of {source} hold no rows")
    rows = table.slice(0, limit) if limit else table
    return [(_decode(image, cv2.IMREAD_COLOR, source, size), _decode(mask, cv2.IMREAD_GRAYSCALE, source, size))
            for image, mask in zip(rows.column("image").to_pylist(), rows.column("mask").to_pylist())]


def _read_table(source: str | Path) -> pa.Table:
    """The image and mask columns of a local dataset (pyarrow) or a Hub dataset (datasets)."""
    path = Path(source)
    if path.exists():
        shards = sorted((path / "data").glob("*.parquet")) if path.is_dir() else [path]
        if path.is_dir() and not shards:
            raise SynthError(f"no Parquet shards in {path / 'data'}")
        try:
            tables = [pq.read_table(shard, columns=["image", "mask"]) for shard in shards]
        except Exception as error:  # pyarrow raises several types for bad or foreign files
            raise SynthError(f"cannot read the image/mask columns of {path}: {error}") from None
        return pa.concat_tables(tables)
    if not is_hub_id(source):
        raise SynthError(f"anomaly dataset {source} does not exist (neither a directory nor a Hub id owner/name)")
    try:
        from datasets import Image, load_dataset

        dataset = load_dataset(str(source), split="train")
        dataset = dataset.cast_column("image", Image(decode=False)).cast_column("mask", Image(decode=False))
        return dataset.select_columns(["image", "mask"]).data.table
    except Exception as error:  # network, missing repo or wrong columns: one line for the user
        raise SynthError(f"cannot load Hub dataset {source}: {str(error).splitlines()[0]}") from None


def _decode(cell: dict | None, flag: int, source: str | Path, size: ImageSize) -> np.ndarray:
    data = (cell or {}).get("bytes")
    image = decode_bytes(data, flag) if data else None
    if image is None:
        raise SynthError(f"an undecodable image or mask in {source}")
    if flag == cv2.IMREAD_GRAYSCALE:
        return np.where(resize(image, size, cv2.INTER_NEAREST) > 127, 255, 0).astype(np.uint8)
    return resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), size)
