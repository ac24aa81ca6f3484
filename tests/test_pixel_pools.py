"""benchmarks/pixel_pools.py: each pool ranks the pixel sets it names, and only those."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.evaluation.bench import TestSet as LoadedTestSet
from tests.conftest import load_benchmark


def test_pools_split_the_pooled_pixel_auroc():
    pools = load_benchmark("pixel_pools", "pixel_pools").pools
    # two normal tiles (score 0), two defective ones: defect pixels 3, the rest of their tiles 1, except a
    # stripe far from the defect at 0.5; the crack tile's defect scores 0.8, below the rest of its tile
    masks = np.zeros((4, 32, 32), np.uint8)
    masks[2, 4:8, 4:8] = masks[3, 20:24, 4:6] = 255
    maps = np.zeros((4, 32, 32))
    maps[2:] = 1.0
    maps[2:, :, 30:] = 0.5
    maps[2][masks[2] > 0], maps[3][masks[3] > 0] = 3.0, 0.8
    test = LoadedTestSet(np.zeros((4, 32, 32, 3), np.uint8), masks, np.array([0, 0, 1, 1]),
                         ["good", "good", "hole", "crack"])
    found = pools(test, maps, far=8)
    assert found["defects vs normal images"] == 1.0
    assert found["rest of defective images vs normal images"] == 1.0
    assert found["rest of defective images > 8 px from a mask vs normal images"] == 1.0
    assert found["hole vs rest of its images"] == 1.0 and found["crack vs rest of its images"] < 0.2
    assert found["crack vs normal images"] == 1.0
    assert found["pooled"] < found["defects vs normal images"]
    # 16 hole pixels above all 2,024 others of their tiles, 8 crack pixels above only the 128 at 0.5
    assert found["defects vs rest of their images"] == pytest.approx((16 * 2024 + 8 * 128) / (24 * 2024))
