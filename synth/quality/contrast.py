"""Anomaly contrast: how much anomalies change the pixels of the image they were made from.

Per row, the mean absolute change in grey levels (0-255, averaged over RGB) inside the mask and
outside it, and the share of mask pixels changed by more than ``VISIBLE`` grey levels; summarized
over rows by medians. A generator whose anomalies change the masked pixels by a few grey levels
gives a detector labels it cannot learn, which this shows before any training.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow.parquet as pq

from synth.data.images import read_rgb
from synth.data.size import ImageSize
from synth.shards import completed_shards

VISIBLE = 8  # grey levels: a change a detector's features can plausibly see


def pixel_change(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """HxW mean absolute RGB difference in grey levels."""
    return np.abs(image.astype(np.float32) - reference.astype(np.float32)).mean(axis=2)


def summarize(rows: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Medians over (change map, boolean mask) rows: rows, share with a non-empty mask, mask area,
    change inside (with quartiles), share of mask pixels changed > VISIBLE, change outside."""
    inside, outside, visible, areas, count = [], [], [], [], 0
    for change, mask in rows:
        count += 1
        if mask.any():
            areas.append(mask.mean())
            inside.append(change[mask].mean())
            visible.append((change[mask] > VISIBLE).mean())
        if not mask.all():
            outside.append(change[~mask].mean())
    figures = {"rows": count, "masked": len(areas) / max(count, 1),
               "outside": float(np.median(outside)) if outside else float("nan")}
    if not areas:  # no row has a mask: nothing inside to measure
        return {**figures, "area": 0.0, **dict.fromkeys(("inside", "inside_q1", "inside_q3", "visible"), float("nan"))}
    return {**figures, "area": float(np.median(areas)), "inside": float(np.median(inside)),
            "inside_q1": float(np.percentile(inside, 25)), "inside_q3": float(np.percentile(inside, 75)),
            "visible": float(np.median(visible))}


def _decode(cell: dict, flag: int) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(cell["bytes"], np.uint8), flag)


def dataset_rows(directory: Path, data: Path, limit: int | None = None) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """(change map, mask) of the masked rows of a synth dataset, against their source images read again
    from ``data`` at the dataset's size; rows without a mask or a source (raw SDAS) are skipped."""
    count = 0
    for shard in completed_shards(Path(directory)):
        for row in pq.read_table(shard, columns=["image", "mask", "source"]).to_pylist():
            if row["mask"] is None or row["source"] is None:
                continue
            image = cv2.cvtColor(_decode(row["image"], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            source = read_rgb(data / row["source"], ImageSize.of(image))
            yield pixel_change(image, source), _decode(row["mask"], cv2.IMREAD_GRAYSCALE) > 127
            count += 1
            if count == limit:
                return
