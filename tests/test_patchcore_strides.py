"""benchmarks/patchcore_strides.py on tiny defects: cross-fitted synthetic metrics and test metrics per stride set,
each defect's pixel AUROC, and bad stride lists as one-line errors."""

from __future__ import annotations

import click
import numpy as np
import pytest
import torch

from detectors.evaluation import bench
from detectors.training.loop import anomaly_sources
from tests.conftest import load_benchmark
from tiny_defects import tiny_test_set, tiny_training_set


@pytest.fixture(scope="module")
def strides():
    torch.set_num_threads(1)
    return load_benchmark("patchcore_strides", "patchcore_strides")


def test_synthetic_and_test_metrics_are_in_range(strides):
    train = tiny_training_set(normal=8, anomalies=12, shape=(64, 64))
    synthetic = strides.synthetic_metrics(train, anomaly_sources("patchcore", train), (8, 16), seed=0)
    assert set(strides.METRICS) | {"held_out"} <= set(synthetic)
    assert all(0.0 <= synthetic[key] <= 1.0 for key in strides.METRICS)
    assert synthetic["pixel_auroc"] > 0.5  # the tiny defects are visible to a bank that never held their source
    images, labels, masks = tiny_test_set(4, shape=(64, 64))
    test = bench.TestSet(images, masks, labels.astype(bool), ["good"] * 4 + ["spot"] * 2 + ["scratch"] * 2)
    tested = strides.test_metrics(train, test, (16, 32), seed=0)
    assert {"spot_pixel_auroc", "scratch_pixel_auroc"} <= set(tested) and "good_pixel_auroc" not in tested
    assert all(0.0 <= tested[key] <= 1.0 for key in strides.METRICS)


def test_stride_lists_are_parsed_or_refused(strides):
    assert strides.parse_strides("8,16,32") == (8, 16, 32)
    with pytest.raises(click.BadParameter, match="comma-separated"):
        strides.parse_strides("8;16")
