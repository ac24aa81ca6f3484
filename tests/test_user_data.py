"""A user's own data: mask encodings, test sets that cannot be evaluated, blank masks, too few anomalies, small KID sets."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from detectors import TrainingSet, create_detector
from detectors.evaluation.bench import TestSet as LoadedTestSet, metrics_per_defect, per_defect_table, run_bench
from detectors.training.loop import split_rows
from synth.data import ImageSize, load_category
from synth.data.images import read_mask, warn_once
from synth.errors import SynthError
from synth.quality.score import kid
from tests.conftest import write_image

SIZE = ImageSize.square(48)


@pytest.fixture(autouse=True)
def fresh_warnings() -> None:
    warn_once.cache_clear()  # each test sees its own warnings


def _mask(value: int, box: tuple[slice, slice] = (slice(10, 20), slice(10, 30))) -> np.ndarray:
    mask = np.zeros((48, 48), np.uint8)
    mask[box] = value
    return mask


@pytest.mark.parametrize("value", [255, 1, 76])  # 0/255, 0/1 and a red mask read as grey
def test_masks_read_alike_whatever_their_defect_value(tmp_path: Path, value: int):
    mask = read_mask(write_image(tmp_path / "m.png", _mask(value)), SIZE)
    np.testing.assert_array_equal(mask, _mask(255))


def test_a_soft_mask_edge_counts_from_half_its_maximum(tmp_path: Path):
    soft = _mask(255)
    soft[9, 10:30] = 100  # an anti-aliased edge under half of 255
    soft[20, 10:30] = 200
    mask = read_mask(write_image(tmp_path / "m.png", soft), SIZE)
    assert not mask[9].any() and mask[20, 10:30].min() == 255


def test_a_test_set_without_defects_is_refused_before_any_work(mvtec_tree: Path):
    for folder in ("test/scratch", "ground_truth/scratch"):
        for path in (mvtec_tree / "widget" / folder).iterdir():
            path.unlink()
        (mvtec_tree / "widget" / folder).rmdir()
    with pytest.raises(SynthError, match="no defective test images"):
        LoadedTestSet.from_category(load_category(mvtec_tree, "widget", size=SIZE), SIZE)


def test_blank_masks_are_an_error_when_all_are_blank_and_a_warning_naming_them_otherwise(
        mvtec_tree: Path, caplog: pytest.LogCaptureFixture):
    masks = sorted((mvtec_tree / "widget/ground_truth/scratch").iterdir())
    write_image(masks[0], _mask(0))
    with caplog.at_level(logging.WARNING):
        test = LoadedTestSet.from_category(load_category(mvtec_tree, "widget", size=SIZE), SIZE)
    assert "1 of 2 defect masks of 'widget' are empty at --size 48 (scratch: 1)" in caplog.text
    assert test.masks[test.labels == 1].any()
    write_image(masks[1], _mask(0))
    with pytest.raises(SynthError, match="no ground-truth mask of category 'widget' marks a defect pixel"):
        LoadedTestSet.from_category(load_category(mvtec_tree, "widget", size=SIZE), SIZE)


def test_a_defect_type_with_blank_masks_gets_image_metrics_only():
    rng = np.random.default_rng(0)
    masks = np.zeros((4, 8, 8), np.uint8)
    masks[2, 2:4, 2:4] = 255  # "dent" has a mask, "stain" a blank one
    test = LoadedTestSet(np.zeros((4, 8, 8, 3), np.uint8), masks, np.array([0, 0, 1, 1]), ["good", "good", "dent", "stain"])
    maps = rng.random((4, 8, 8)).astype(np.float32)
    per_defect = metrics_per_defect(test, np.array([0.1, 0.2, 0.9, 0.8]), maps)
    assert per_defect["stain"]["image_auroc"] == 1.0 and per_defect["stain"]["pixel_auroc"] is None
    assert per_defect["dent"]["pixel_auroc"] is not None
    row = next(line for line in per_defect_table(per_defect).splitlines() if line.startswith("| stain"))
    assert row.count("–") == 3  # pixel AUROC, AUPRO and pixel AP


def test_too_few_anomalies_for_validation_say_so(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING):
        kept, held = split_rows(12, 0.1, np.random.default_rng(0))
    assert len(kept) == 12 and len(held) == 0
    assert "12 synthetic anomalies are too few to hold out validation rows" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        split_rows(40, 0.1, np.random.default_rng(0))
        split_rows(12, 0.0, np.random.default_rng(0))  # validation switched off: nothing to say
    assert caplog.text == ""


def test_kid_on_a_small_set_warns(caplog: pytest.LogCaptureFixture):
    rng = np.random.default_rng(0)
    with caplog.at_level(logging.WARNING):
        kid(rng.random((12, 8)), rng.random((20, 8)))
    assert "KID from 12 images (under 100)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        kid(rng.random((120, 8)), rng.random((150, 8)))
    assert caplog.text == ""


def test_bench_checks_every_detector_before_fitting_the_first(mvtec_tree: Path, tmp_path: Path):
    category = load_category(mvtec_tree, "widget", size=ImageSize.square(64))
    image = category.train_images[0]
    mask = np.zeros((64, 64), np.uint8)
    mask[10:20, 10:30] = 255
    one_image = TrainingSet([image], [(image, mask)])
    out = tmp_path / "bench"
    with pytest.raises(SynthError, match="patchcore-refine needs at least 2 normal training images, got 1"):
        run_bench(category, ["patchcore", "patchcore-refine"], out, one_image)
    assert not out.exists()  # PatchCore was not fitted (nor saved) first
    tiled = create_detector("patchcore", tile=(96, 96))
    with pytest.raises(SynthError, match="a tile of 96 px does not fit"):
        tiled.check_training_data(one_image)


def test_data_pointing_at_the_category_folder_names_its_parent(mvtec_tree: Path):
    with pytest.raises(SynthError, match=r"looks like a category folder: pass its parent, --data .*mvtec --category widget"):
        load_category(mvtec_tree / "widget", "widget", size=SIZE)
