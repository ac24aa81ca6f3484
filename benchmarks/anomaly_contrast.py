"""How visible are a dataset's anomalies? Pixel change inside and outside the masks, per shard directory.

For every row of a blended synth dataset, the anomalous image is compared with its normal source image
(read again from the data root at the dataset's size): the mean absolute change in grey levels (0-255,
averaged over RGB) inside the mask and outside it, and the share of mask pixels changed by more than
8 grey levels, with the share of rows whose mask is non-empty and the median mask area (aligned SDAS
masks may be empty). A generator whose anomalies change the masked pixels by a few grey levels gives a
detector labels it cannot learn; this needs no test images, so it can be read before any training.

    python benchmarks/anomaly_contrast.py --data ../shared/data/mvtec runs/matrix3/shards/bottle/*/seed0
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq

from synth.data.images import read_rgb

VISIBLE = 8  # grey levels: a change a detector's features can plausibly see


def decode(cell: dict, flag: int) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(cell["bytes"], np.uint8), flag)


def contrast(directory: Path, data: Path) -> dict[str, float]:
    """Medians over the rows of `directory` of the change inside / outside the masks."""
    inside, outside, visible, areas = [], [], [], []
    for shard in sorted(directory.rglob("*.parquet")):
        for row in pq.read_table(shard, columns=["image", "mask", "source"]).to_pylist():
            image = cv2.cvtColor(decode(row["image"], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32)
            mask = decode(row["mask"], cv2.IMREAD_GRAYSCALE) > 127
            source = read_rgb(data / row["source"], image.shape[0]).astype(np.float32)
            change = np.abs(image - source).mean(axis=2)
            if mask.any():
                areas.append(mask.mean())
                inside.append(change[mask].mean())
                visible.append((change[mask] > VISIBLE).mean())
            outside.append(change[~mask].mean())
    figures = {"rows": len(outside), "masked": len(areas) / len(outside), "outside": float(np.median(outside))}
    if not areas:  # no row has a mask: nothing inside to measure
        return {**figures, "area": 0.0, "inside": np.nan, "inside_q1": np.nan, "inside_q3": np.nan, "visible": np.nan}
    return {**figures, "area": float(np.median(areas)), "inside": float(np.median(inside)),
            "inside_q1": float(np.percentile(inside, 25)), "inside_q3": float(np.percentile(inside, 75)),
            "visible": float(np.median(visible))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shards", nargs="+", type=Path, help="blended synth dataset directories")
    parser.add_argument("--data", type=Path, required=True, help="the data root the sources are relative to")
    args = parser.parse_args()
    print(f"| dataset | rows | rows with a mask | mask area (median) | change inside mask (median [q1, q3]) "
          f"| mask pixels changed > {VISIBLE} | change outside |")
    print("|---|---|---|---|---|---|---|")
    for directory in args.shards:
        c = contrast(directory, args.data)
        print(f"| {directory} | {c['rows']} | {c['masked']:.0%} | {c['area']:.1%} "
              f"| {c['inside']:.1f} [{c['inside_q1']:.1f}, {c['inside_q3']:.1f}] "
              f"| {c['visible']:.0%} | {c['outside']:.2f} |")


if __name__ == "__main__":
    main()
