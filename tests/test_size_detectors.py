"""Detectors at non-square sizes: fit and score through the CLI, PRN and RealNet networks, saved sizes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from detectors import TrainingSet, create_detector, load_detector
from detectors.evaluation.bench import fit_detector
from synth.data import ImageSize, load_category
from tests.conftest import run_cli, write_image
from tests.test_detectors_cli import run
from tests.test_detectors_models import one_thread  # noqa: F401  (autouse: one torch thread)
from tests.test_detectors_prn import FAST as FAST_PRN
from tests.test_detectors_realnet import FAST as FAST_REALNET
from tests.tiny_defects import check_round_trips, tiny_test_set, tiny_training_set

HEIGHT, WIDTH = 64, 128


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> Path:
    """ROOT/strip in the MVTec AD layout: brick crops of several sizes, 2 good and 2 defective test images."""
    root = tmp_path_factory.mktemp("wide")
    images = load_category(None, "brick", size=ImageSize(80, 150)).train_images
    for i in range(10):
        write_image(root / "strip/train/good" / f"{i:03d}.png", images[i][:, : 140 + i])
    for i in range(2):
        write_image(root / "strip/test/good" / f"{i:03d}.png", images[40 + i])
        image, mask = images[50 + i].copy(), np.zeros((80, 150), np.uint8)
        image[20:40, 30:60], mask[20:40, 30:60] = 255 - image[20:40, 30:60], 255
        write_image(root / "strip/test/square" / f"{i:03d}.png", image)
        write_image(root / "strip/ground_truth/square" / f"{i:03d}_mask.png", mask)
    return root


def test_bench_and_eval_at_a_non_square_size(wide, tmp_path, capsys):
    size = f"{HEIGHT}x{WIDTH}"
    shards = tmp_path / "synth"
    assert run_cli(["gen", "-g", "cutpaste", "--data", wide, "--category", "strip", "--size", size, "-n", 8,
                    "--out", shards], capsys)[0] == 0
    out = tmp_path / "results"
    status, _, err = run(["bench", "--data", wide, "--category", "strip", "--size", size,
                          "--detectors", "patchcore,simplenet", "--anomalies", shards,
                          "--set", "simplenet.max_steps=3", "--set", "simplenet.hidden=16",
                          "--set", "simplenet.val_every=0", "--overlays", 1, "--out", out], capsys)
    assert status == 0, err
    for name in ("patchcore", "simplenet"):
        config = json.loads((out / "models" / name / "config.json").read_text())["config"]
        assert (config["height"], config["width"], config["size"]) == (HEIGHT, WIDTH, None)
    overlay = next((out / "overlays").glob("*.png"))
    assert cv2.imread(str(overlay)).shape == (HEIGHT, 3 * WIDTH, 3)
    status, _, err = run(["eval", "--model", out / "models/patchcore", "--data", wide, "--category", "strip",
                          "--out", tmp_path / "eval"], capsys)
    assert status == 0, err
    metrics = json.loads((tmp_path / "eval/metrics.json").read_text())
    assert (metrics["height"], metrics["width"]) == (HEIGHT, WIDTH)


def test_bad_detector_size_is_one_line(wide, tmp_path, capsys):
    status, _, err = run(["fit", "--detector", "patchcore", "--data", wide, "--category", "strip",
                          "--size", "16x64", "--out", tmp_path / "m"], capsys)
    assert status == 2 and "at least 32" in err and len(err.strip().splitlines()) == 1


def test_a_config_with_only_a_side_still_loads(tmp_path):
    detector = create_detector("patchcore", coreset_ratio=0.5)
    images = load_category(None, "brick", size=32).train_images[:4]
    fit_detector(detector, TrainingSet(images))
    directory = detector.save(tmp_path / "model")
    document = json.loads((directory / "config.json").read_text())
    assert (document["config"]["size"], document["config"]["height"]) == (32, 32)
    for key in ("height", "width"):  # a config written before height and width were recorded
        del document["config"][key]
    (directory / "config.json").write_text(json.dumps(document))
    assert load_detector(directory).config.image_size() == ImageSize(32, 32)


@pytest.mark.parametrize("name, fast", [("prn", FAST_PRN), ("realnet", FAST_REALNET)])
def test_segmentation_detectors_fit_and_score_non_square(name, fast, tmp_path):
    """128 x 256, the smallest non-square size both take (sides multiples of 128); one short epoch."""
    shape = (128, 256)
    detector = create_detector(name, **{**fast, "epochs": 1})
    data = tiny_training_set(normal=4, anomalies=8, shape=shape)
    check_round_trips(detector, tmp_path, data, tiny_test_set(count=2, shape=shape))
