"""How visible are a dataset's anomalies? Pixel change inside and outside the masks, per shard directory.

For every row of a blended synth dataset, the anomalous image is compared with its normal source image
(read again from the data root at the dataset's size): the mean absolute change in grey levels (0-255,
averaged over RGB) inside the mask and outside it, the share of mask pixels changed by more than
8 grey levels, the share of rows whose mask is non-empty and the median mask area (aligned SDAS
masks may be empty); `synth.quality.contrast` computes them (`synth score` reports the same figures). A
generator whose anomalies change the masked pixels by a few grey levels gives a detector labels it
cannot learn; this needs no test images, so it can be read before any training.

    python benchmarks/anomaly_contrast.py --data ../shared/data/mvtec runs/matrix3/shards/bottle/*/seed0
"""
from __future__ import annotations

import argparse
from pathlib import Path

from synth.quality.contrast import VISIBLE, dataset_rows, summarize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shards", nargs="+", type=Path, help="blended synth dataset directories")
    parser.add_argument("--data", type=Path, required=True, help="the data root the sources are relative to")
    args = parser.parse_args()
    print(f"| dataset | rows | rows with a mask | mask area (median) | change inside mask (median [q1, q3]) "
          f"| mask pixels changed > {VISIBLE} | change outside |")
    print("|---|---|---|---|---|---|---|")
    for directory in args.shards:
        c = summarize(dataset_rows(directory, args.data))
        print(f"| {directory} | {c['rows']} | {c['masked']:.0%} | {c['area']:.1%} "
              f"| {c['inside']:.1f} [{c['inside_q1']:.1f}, {c['inside_q3']:.1f}] "
              f"| {c['visible']:.0%} | {c['outside']:.2f} |")


if __name__ == "__main__":
    main()
