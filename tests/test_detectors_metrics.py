"""Detector metrics against scikit-learn and against small cases worked out by hand."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from detectors.evaluation.bench import TestSet as LoadedTestSet, metrics_per_defect
from detectors.evaluation.metrics import (PixelScores, aupro, evaluate, image_auroc, image_f1_max, pixel_ap, pixel_auroc,
                                         pro_curve)
from synth.errors import SynthError


def _load_reference():
    """benchmarks/metrics.py: the official MVTec AD AUPRO re-implemented, and the random maps with ties."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "metrics.py"
    spec = importlib.util.spec_from_file_location("metrics_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = _load_reference()


def test_image_auroc_by_hand_and_against_sklearn():
    # Pairs (anomalous > normal): 0.35 beats 0.1 only, 0.8 beats both -> 3 of 4.
    assert image_auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    rng = np.random.default_rng(0)
    labels, scores = rng.integers(0, 2, 200), rng.normal(size=200)
    assert image_auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))


def test_image_f1_max_by_hand():
    # Thresholds 0.9 / 0.8 / 0.1 give F1 2/3, 1/2 and 0.8 (precision 2/3, recall 1).
    assert image_f1_max(np.array([1, 0, 1]), np.array([0.9, 0.8, 0.1])) == pytest.approx(0.8)
    assert image_f1_max(np.array([0, 1, 1]), np.array([0.1, 0.2, 0.3])) == pytest.approx(1.0)


def test_pixel_metrics_against_sklearn():
    rng = np.random.default_rng(1)
    masks = np.zeros((3, 16, 16), np.uint8)
    masks[0, 2:6, 2:6] = 255
    masks[2, 10:14, 3:9] = 255
    maps = rng.random((3, 16, 16)) + (masks > 0) * 0.5
    labels = masks.ravel() > 0
    assert pixel_auroc(masks, maps) == pytest.approx(roc_auc_score(labels, maps.ravel()))
    assert pixel_ap(masks, maps) == pytest.approx(average_precision_score(labels, maps.ravel()))


def _hand_case() -> tuple[np.ndarray, np.ndarray]:
    # One row of 10 pixels: regions A = pixels 0-1 and B = pixels 8-9 (not touching), 6 normal pixels.
    mask = np.array([[[1, 1, 0, 0, 0, 0, 0, 0, 1, 1]]], np.uint8) * 255
    scores = np.array([[[1.0, 1.0, 0.9, 0.3, 0.2, 0.05, 0.04, 0.03, 0.5, 0.1]]])
    return mask, scores


def test_aupro_by_hand():
    masks, maps = _hand_case()
    # Threshold 1.0: PRO (1 + 0) / 2 = 0.5 at FPR 0; 0.9: FPR 1/6; 0.5: PRO 0.75; 0.3: FPR 2/6 > 0.3.
    # Area up to 0.3 = 0.5 * 1/6 + 0.75 * (0.3 - 1/6); normalised by 0.3.
    expected = (0.5 / 6 + 0.75 * (0.3 - 1 / 6)) / 0.3
    assert aupro(masks, maps) == pytest.approx(expected)
    fpr, pro = pro_curve(masks, maps)
    assert fpr[0] == 0 and pro[0] == 0 and fpr[-1] == pytest.approx(1) and pro[-1] == pytest.approx(1)


def _padded(images: list[tuple[np.ndarray, np.ndarray]], shape: tuple[int, int], fill: float):
    """Maps, masks and valid pixels of differently sized images padded to one array (mask 1 in the padding)."""
    stack = (len(images), *shape)
    maps, masks, valid = np.full(stack, fill), np.ones(stack, bool), np.zeros(stack, bool)
    for i, (m, k) in enumerate(images):
        maps[i, :m.shape[0], :m.shape[1]], masks[i, :k.shape[0], :k.shape[1]] = m, k
        valid[i, :m.shape[0], :m.shape[1]] = True
    return masks, maps, valid


def test_padding_outside_valid_pixels_changes_no_pixel_metric():
    # Two images of different sizes padded into one array score as their own pixels do, whatever the padding.
    rng = np.random.default_rng(0)
    small, large = rng.random((6, 5)), rng.random((8, 9))
    small_mask, large_mask = np.zeros((6, 5), bool), np.zeros((8, 9), bool)
    small_mask[1:3, 1:3], large_mask[4:7, 2:8] = True, True
    images = [(small, small_mask), (large, large_mask)]
    masks, maps, valid = _padded(images, (8, 9), 5.0)
    one = PixelScores(masks, maps, valid=valid)
    masks, maps, valid = _padded(images, (11, 12), -1.0)
    other = PixelScores(masks, maps, valid=valid)
    flat_maps = np.concatenate([small.ravel(), large.ravel()])
    flat_masks = np.concatenate([small_mask.ravel(), large_mask.ravel()])
    assert one.auroc() == pytest.approx(roc_auc_score(flat_masks, flat_maps)) == pytest.approx(other.auroc())
    assert one.average_precision() == pytest.approx(average_precision_score(flat_masks, flat_maps))
    assert one.aupro() == pytest.approx(other.aupro()) and 0 < one.aupro() < 1
    with pytest.raises(SynthError, match="differ in shape"):
        PixelScores(masks, maps, valid=valid[:, :4])


def test_aupro_averages_regions_not_pixels():
    # A large region found and a small one missed: PRO counts each region once (0.5), pixel recall would be ~0.9.
    masks = np.zeros((1, 20, 20), np.uint8)
    masks[0, :, :9] = 255
    masks[0, 0, 19] = 255
    maps = (masks > 0).astype(float)
    maps[0, 0, 19] = 0.0
    maps[0, 10:, 15] = 0.5  # some normal pixels above the missed one
    fpr, pro = pro_curve(masks, maps)
    assert pro[fpr <= 0.01].max() == pytest.approx(0.5)
    assert aupro(np.where(maps > 0.9, 255, 0), maps) == pytest.approx(1.0)


def test_metrics_need_both_classes():
    with pytest.raises(SynthError):
        image_auroc(np.ones(4), np.arange(4))
    with pytest.raises(SynthError):
        aupro(np.zeros((1, 4, 4)), np.ones((1, 4, 4)))


def test_evaluate_reports_every_metric():
    masks, maps = _hand_case()
    masks = np.concatenate([masks, np.zeros_like(masks)])
    maps = np.concatenate([maps, maps * 0.1])
    result = evaluate(np.array([1, 0]), maps.reshape(2, -1).max(1), masks, maps)
    assert set(result) == {"image_auroc", "image_f1_max", "pixel_auroc", "pixel_ap", "aupro_0.3"}
    assert result["image_auroc"] == 1.0 and result["image_f1_max"] == 1.0


@pytest.mark.parametrize("seed, levels", [(0, 6), (1, 16), (2, 256), (3, 1 << 20)])
def test_pixel_metrics_equal_the_references_on_maps_with_ties(seed, levels):
    masks, maps = reference.random_maps(12, 40, seed, levels)  # few levels: many ties, also across classes
    assert pixel_auroc(masks, maps) == pytest.approx(reference.reference_pixel_auroc(masks, maps), abs=1e-8)
    assert pixel_ap(masks, maps) == pytest.approx(reference.reference_pixel_ap(masks, maps), abs=1e-8)
    for max_fpr in (0.3, 0.05, 0.5, 1.0):
        assert aupro(masks, maps, max_fpr) == pytest.approx(reference.reference_aupro(masks, maps, max_fpr), abs=1e-8)
    fpr, pro = pro_curve(masks, maps)
    reference_fpr, reference_pro = reference.reference_pro_curve(maps, masks)
    np.testing.assert_allclose(fpr, reference_fpr, atol=1e-12)
    np.testing.assert_allclose(pro, reference_pro, atol=1e-12)
    result = evaluate((masks > 0).any(axis=(1, 2)), maps.reshape(12, -1).max(1), masks, maps.astype(np.float64))
    assert result["aupro_0.3"] == pytest.approx(reference.reference_aupro(masks, maps), abs=1e-8)
    assert result["pixel_auroc"] == pytest.approx(reference.reference_pixel_auroc(masks, maps), abs=1e-8)


def test_aupro_when_a_curve_point_lies_on_the_limit():
    # 10 normal pixels, 3 regions: the 3 normal pixels scored 9, 8, 8 give FPR 3/10 == 0.3 exactly (no
    # interpolation at 0.3); anomalous pixels are tied with normal ones at 9, 7 and 1.
    masks = np.array([[[0, 0, 0, 0, 0, 1, 1, 0]], [[1, 1, 0, 0, 1, 1, 0, 0]]], np.uint8) * 255
    maps = np.array([[[9, 8, 7, 1, 1, 9, 7, 0]], [[1, 5, 0, 0, 1, 2, 8, 3]]], np.float32)
    fpr, _ = reference.reference_pro_curve(maps, masks)
    assert 0.3 in fpr
    for limit in (0.3, 0.2, 0.35, 0.7, 1.0):
        assert aupro(masks, maps, limit) == pytest.approx(reference.reference_aupro(masks, maps, limit), abs=1e-12)
    with pytest.raises(SynthError, match="NaN"):
        aupro(masks, np.where(masks > 0, np.nan, maps))


def test_metrics_per_defect_pair_each_defect_type_with_the_normal_images():
    """A type the detector finds scores 1; a type it misses scores 0, whatever the other type does."""
    masks = np.zeros((4, 8, 8), np.uint8)
    masks[2, :4, :4] = masks[3, 4:, 4:] = 255
    maps = np.zeros((4, 8, 8), np.float32)
    maps[0] = maps[1] = 0.5  # normal images: a flat middle score
    maps[2, :4, :4] = 1.0  # "found": high inside its mask
    maps[3] = 0.1  # "missed": lower than every normal pixel
    maps[3, 4:, 4:] = 0.0
    test = LoadedTestSet(np.zeros((4, 8, 8, 3), np.uint8), masks, np.array([0, 0, 1, 1]), ["good", "good", "found", "missed"])
    per_defect = metrics_per_defect(test, maps.reshape(4, -1).max(axis=1), maps)
    assert list(per_defect) == ["found", "missed"]
    assert per_defect["found"]["image_auroc"] == 1.0 and per_defect["found"]["pixel_auroc"] == 1.0
    assert per_defect["missed"]["image_auroc"] == 0.0 and per_defect["missed"]["pixel_auroc"] == 0.0
