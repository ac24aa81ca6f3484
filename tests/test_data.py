"""Dataset readers on tiny trees made here and on the real data when present."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from synth.data import load_category
from synth.data.images import read_rgb
from synth.errors import SynthError
from tests.conftest import noise_image, real_data, write_image


def test_mvtec_layout(mvtec_tree):
    category = load_category(mvtec_tree, "widget", size=32)
    assert category.layout == "mvtec"
    assert len(category) == 6
    assert all(image.shape == (32, 32, 3) and image.dtype == np.uint8 for image in category.train_images)
    assert [item.label for item in category.test] == [0, 0, 1, 1]
    image, mask = category.test[2].load(category.size)
    assert image.shape == (32, 32, 3) and mask.shape == (32, 32)
    assert set(np.unique(mask)) == {0, 255}
    assert category.test[0].load(category.size)[1].max() == 0


def test_btad_layout_with_bmp_masks(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "btad"
    for i in range(3):
        write_image(root / "01/train/ok" / f"{i:04d}.bmp", noise_image(rng))
    write_image(root / "01/test/ko/0000.bmp", noise_image(rng))
    write_image(root / "01/ground_truth/ko/0000.png", np.full((48, 48), 255, np.uint8))
    category = load_category(root, "01", size=24)
    assert category.layout == "btad" and len(category) == 3
    assert category.test[0].label == 1 and category.test[0].load(category.size)[1].min() == 255


def test_visa_layout(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "visa"
    lines = ["object,split,label,image,mask"]
    for i in range(3):
        write_image(root / f"candle/Data/Images/Normal/{i}.JPG", noise_image(rng))
        lines.append(f"candle,train,normal,candle/Data/Images/Normal/{i}.JPG,")
    write_image(root / "candle/Data/Images/Anomaly/9.JPG", noise_image(rng))
    write_image(root / "candle/Data/Masks/Anomaly/9.png", np.full((48, 48), 255, np.uint8))
    lines.append("candle,test,anomaly,candle/Data/Images/Anomaly/9.JPG,candle/Data/Masks/Anomaly/9.png")
    (root / "split_csv").mkdir(parents=True)
    (root / "split_csv/1cls.csv").write_text("\n".join(lines) + "\n")
    category = load_category(root, "candle", size=16)
    assert category.layout == "visa" and len(category) == 3
    assert category.test[0].label == 1 and category.test[0].load(category.size)[1].max() == 255


def test_folder_layout_converts_gray_and_rgba_and_skips_corrupt(tmp_path, caplog):
    rng = np.random.default_rng(0)
    folder = tmp_path / "parts"
    write_image(folder / "a.png", noise_image(rng))
    write_image(folder / "b.png", rng.integers(0, 256, (40, 40), dtype=np.uint8))
    rgba = rng.integers(0, 256, (40, 40, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    write_image(folder / "c.png", rgba)
    (folder / "d.png").write_bytes(b"not a png")
    with caplog.at_level(logging.WARNING, logger="synth"):
        category = load_category(tmp_path, "parts", size=20)
    assert "skipping: cannot read image" in caplog.text and "skipped 1 of 4 images" in caplog.text
    assert category.layout == "folder" and len(category) == 3
    assert all(image.shape == (20, 20, 3) for image in category.train_images)
    gray = category.train_images[1]
    assert (gray[..., 0] == gray[..., 1]).all()


def test_rgba_alpha_composites_on_black(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = 200
    write_image(tmp_path / "x.png", rgba)
    assert read_rgb(tmp_path / "x.png").max() == 0


@pytest.mark.parametrize("root, category, message", [
    ("missing", "x", "does not exist"),
    ("empty", "x", "is empty"),
    ("tree", "nothere", "not found"),
])
def test_bad_data_errors(tmp_path, mvtec_tree, root, category, message):
    (tmp_path / "empty").mkdir()
    paths = {"missing": tmp_path / "missing", "empty": tmp_path / "empty", "tree": mvtec_tree}
    with pytest.raises(SynthError, match=message):
        load_category(paths[root], category)


def test_all_corrupt_is_an_error(tmp_path):
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts/a.png").write_bytes(b"junk")
    with pytest.raises(SynthError, match="no readable images"):
        load_category(tmp_path, "parts")


def test_unknown_layout_and_builtin():
    with pytest.raises(SynthError, match="unknown category"):
        load_category(None, "bottle")
    brick = load_category(None, "brick", size=32)
    assert len(brick) == 200 and brick.train_images[0].shape == (32, 32, 3)
    again = load_category(None, "brick", size=32)
    assert all((a == b).all() for a, b in zip(brick.train_images, again.train_images))


def test_real_mpdd_and_mvtec():
    plate = load_category(real_data("mpdd"), "metal_plate", size=64)
    assert plate.layout == "mvtec" and len(plate) == 40
    assert sum(item.label for item in plate.test) == 60
    assert all(item.mask_path is not None for item in plate.test if item.label)
    bottle = load_category(real_data("mvtec"), "bottle", size=64)
    assert len(bottle) == 209 and {item.defect for item in bottle.test} >= {"good", "broken_large"}
