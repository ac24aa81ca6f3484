"""benchmarks/thin_defect_response.py on synthetic textures: a contrasted line stands out at the finest tap,
a stroke that changes nothing does not; the cells a stroke touches; bad input is one line."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from synth.backbones import create_backbone
from tests.conftest import load_benchmark

REPO = Path(__file__).resolve().parents[1]
SIDE = 64


@pytest.fixture(scope="module")
def thin():
    return load_benchmark("thin_defect_response", "thin_defect_response")


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return create_backbone()


def textures(count: int) -> np.ndarray:
    """Grey blurred-noise surfaces (N, SIDE, SIDE, 3), around 128."""
    rng = np.random.default_rng(0)
    grey = [cv2.GaussianBlur(rng.normal(128, 40, (SIDE, SIDE)).astype(np.float32), (0, 0), 1.5) for _ in range(count)]
    return np.stack([np.repeat(np.clip(g, 0, 255).astype(np.uint8)[..., None], 3, 2) for g in grey])


def with_line(images: np.ndarray, shift: int) -> np.ndarray:
    """A 2-px diagonal line shifted by ``shift`` grey levels from each image (clipped)."""
    out = images.astype(np.int16)
    line = cv2.line(np.zeros((SIDE, SIDE), np.uint8), (8, 12), (56, 50), 1, 2).astype(bool)
    out[:, line] += shift
    return np.clip(out, 0, 255).astype(np.uint8)


def test_contrasted_line_stands_out_and_no_change_does_not(thin, backbone):
    normals = textures(5)
    twins = {2: with_line(normals, -120)}
    stride4 = thin.Feature((4,))
    results = thin.measure_size(backbone, normals, twins, [stride4, thin.Feature((8, 16), aggregated=True)], 256, 0)
    strong = results[stride4, 2]
    assert strong.cells == (SIDE // 4) ** 2
    assert np.nanmedian(strong.ratios) > 1.5 and strong.detected > 0.3

    # The same cells, nothing changed: the stroke cells are ordinary normal cells.
    line = twins[2] != normals
    stroke = thin.touched_cells(line.any(axis=3), (SIDE // 4, SIDE // 4))
    normal = thin.feature_maps(backbone, normals, [stride4])[stride4]
    reference = thin.reference_distances(normal, 256, np.random.default_rng(0))
    null = thin.detectability(normal, reference, normal.clone(), stroke)
    assert 0.7 < np.nanmedian(null.ratios) < 1.3 and null.detected < 0.1
    assert np.nanmedian(strong.ratios) > np.nanmedian(null.ratios) + 0.5


def test_same_seed_same_numbers(thin, backbone):
    normals = textures(3)
    features = [thin.Feature((8,))]
    first = thin.measure_size(backbone, normals, {2: with_line(normals, 60)}, features, 64, 3)
    second = thin.measure_size(backbone, normals, {2: with_line(normals, 60)}, features, 64, 3)
    assert np.array_equal(first[features[0], 2].ratios, second[features[0], 2].ratios)


def test_a_twin_without_change_has_no_stroke_cells(thin, backbone):
    normals = textures(3)
    feature = thin.Feature((8,))
    result = thin.measure_size(backbone, normals, {1: normals.copy()}, [feature], 64, 0)[feature, 1]
    assert np.isnan(result.ratios).all() and np.isnan(result.detected) and result.summary() == "— | —"


def test_touched_cells_are_the_blocks_holding_a_changed_pixel(thin):
    changed = np.zeros((1, 32, 32), bool)
    changed[0, 9, 30] = True
    cells = thin.touched_cells(changed, (4, 4))
    assert cells.shape == (1, 4, 4) and cells.sum() == 1 and cells[0, 1, 3]


def test_strokes_keep_their_course_across_widths(thin):
    natives = list(textures(2)[:, :48])  # 48 x 64: not square, as stored images often are
    thin_twins, wide_twins = (thin.stroke_twins(natives, w, 3.0, 0) for w in (1, 4))
    for normal, narrow, wide in zip(natives, thin_twins, wide_twins):
        assert narrow.shape == normal.shape
        narrow_mask, wide_mask = (narrow != normal).any(2), (wide != normal).any(2)
        assert 0 < narrow_mask.sum() < wide_mask.sum()
        assert (narrow_mask & wide_mask).sum() > 0.8 * narrow_mask.sum()  # the same geometry, wider


@pytest.mark.parametrize("args, message", [(["--widths", "0"], "--widths must be at least 1"),
                                           (["--sizes", "2x"], "--sizes must be comma-separated"),
                                           (["--patchcore", "8,12"], "no feature tap at stride 12")])
def test_bad_input_is_one_line(thin, capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        thin.main(["--data", str(REPO), *args])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and message in err and len(err.splitlines()) == 1
