"""Tiling: windows cover the image, maps are stitched back exactly, training tiles keep the anomalies."""

import json

import cv2
import numpy as np
import pytest

from detectors.data.tiling import Tiler, window_starts
from detectors.data.training import TrainingSet
from synth.errors import SynthError


def test_windows_cover_the_side_and_the_last_one_ends_at_the_border():
    assert window_starts(10, 4, 4) == [0, 4, 6]
    assert window_starts(8, 4, 2) == [0, 2, 4]
    assert window_starts(4, 4, 1) == [0]


@pytest.mark.parametrize("tile, stride", [((4, 4), (5, 4)), ((0, 4), (1, 1))])
def test_bad_tilers_are_refused(tile, stride):
    with pytest.raises(SynthError):
        Tiler(tile, stride)


def test_a_tile_larger_than_the_image_is_refused():
    with pytest.raises(SynthError, match="does not fit"):
        Tiler((16, 16), (8, 8)).split(np.zeros((1, 12, 40, 3), np.uint8))


def test_split_then_merge_gives_back_a_non_square_image():
    rng = np.random.default_rng(0)
    maps = rng.random((2, 23, 41)).astype(np.float32)
    tiler = Tiler((8, 16), (5, 10))
    tiles = tiler.split(maps)
    assert tiles.shape == (2 * len(tiler.origins(23, 41)), 8, 16)
    np.testing.assert_allclose(tiler.merge(tiles, 23, 41), maps, rtol=1e-6)


def test_overlaps_are_averaged():
    tiler = Tiler((4, 4), (2, 4))  # rows of tiles at 0 and 2 on a 6 x 4 image: rows 2-3 covered twice
    merged = tiler.merge(np.stack([np.full((4, 4), 1.0), np.full((4, 4), 3.0)]), 6, 4)
    np.testing.assert_allclose(merged[0, :, 0], [1, 1, 2, 2, 3, 3])


def test_the_image_score_is_the_highest_tile_score_and_maps_come_back_at_full_size():
    images = np.zeros((3, 12, 20, 3), np.uint8)
    images[1, 9, 17] = 200  # one bright pixel in the bottom-right tile of image 1
    tiler = Tiler((6, 10), (6, 10))

    def score_tiles(tiles):
        return tiles.reshape(len(tiles), -1).max(axis=1).astype(float), tiles[..., 0].astype(np.float32)

    scores, maps = tiler.score(score_tiles, images)
    assert scores.tolist() == [0.0, 200.0, 0.0]
    assert maps.shape == (3, 12, 20) and maps[1, 9, 17] == 200 and maps.sum() == 200


def test_training_tiles_keep_only_the_tiles_an_anomaly_touches():
    normal = [np.full((8, 16, 3), 100, np.uint8)] * 2
    mask = np.zeros((8, 16), np.uint8)
    mask[1:3, 12:14] = 255
    data = TrainingSet(normal, [(np.full((8, 16, 3), 50, np.uint8), mask)], anomaly_fraction=0.25)
    tiled = Tiler((8, 8), (8, 8)).training_set(data)
    assert len(tiled.normal) == 4 and all(tile.shape == (8, 8, 3) for tile in tiled.normal)
    assert len(tiled.anomalous) == 1 and tiled.anomalous[0][1][1:3, 4:6].all()
    assert tiled.anomaly_fraction == 0.25


def test_bench_fits_and_scores_on_tiles_of_larger_images(tmp_path, capsys):
    """PatchCore fitted on 32 x 32 tiles of 64 x 96 images scores them whole: full-size maps, tiles recorded."""
    from tests.test_detectors_cli import run
    from tests.tiny_defects import normal_image, with_defect
    from tests.conftest import write_image

    rng = np.random.default_rng(1)
    root = tmp_path / "data"
    for i in range(6):
        write_image(root / "plates/train/good" / f"{i:03d}.png", normal_image(rng, (64, 96)))
    for i in range(3):
        write_image(root / "plates/test/good" / f"{i:03d}.png", normal_image(rng, (64, 96)))
        image, mask = with_defect(normal_image(rng, (64, 96)), rng)
        write_image(root / "plates/test/disc" / f"{i:03d}.png", image)
        write_image(root / "plates/ground_truth/disc" / f"{i:03d}_mask.png", mask)
    out = tmp_path / "results"
    status, _, err = run(["bench", "--data", root, "--category", "plates", "--size", "64x96", "--tile", 32,
                          "--detectors", "patchcore", "--overlays", 1, "--out", out], capsys)
    assert status == 0, err
    config = json.loads((out / "models/patchcore/config.json").read_text())["config"]
    assert config["tile"] == [32, 32] and config["tile_stride"] is None and (config["height"], config["width"]) == (64, 96)
    result = json.loads((out / "results.json").read_text())["results"][0]
    assert result["metrics"]["image_auroc"] > 0.9 and result["train_images"] == 6
    overlay = cv2.imread(str(next((out / "overlays").glob("*.png"))))
    assert overlay.shape == (64, 3 * 96, 3)


def test_a_tile_larger_than_the_images_is_one_line_before_any_work(tmp_path, capsys):
    from tests.test_detectors_cli import run

    status, _, err = run(["fit", "--detector", "patchcore", "--category", "brick", "--size", 64, "--tile", 128,
                          "--out", tmp_path / "model"], capsys)
    assert status == 2 and err.strip().startswith("error:") and "does not fit" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "model").exists()
    status, _, err = run(["fit", "--detector", "patchcore", "--category", "brick", "--tile-stride", 16,
                          "--out", tmp_path / "model"], capsys)
    assert status == 2 and "--tile-stride needs --tile" in err
