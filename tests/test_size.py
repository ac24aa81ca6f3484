"""Image sizes: `--size SIDE|HxW` parsing, non-square datasets from every generator, stretch warnings."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from synth.data import ImageSize, load_category
from synth.data.size import MAX_SIDE, parse_size, stretch_note
from synth.errors import SynthError
from synth.generators.prn import shuffle_grid
from synth.masks import perlin_mask
from tests.conftest import real_data, run_cli, write_image
from tests.test_sdas_gen import micro_model  # noqa: F401  (fixture: an untrained 16 px model)

HEIGHT, WIDTH = 32, 96
GENERATORS = [["cutpaste"], ["cutpaste-scar"], ["cutpaste-union"], ["cutpaste-3way"], ["draem"], ["prn-hea"],
              ["prn-hoa"], ["normal"], ["nsa"], ["strokes"], ["simplex"], ["smooth-intensity"], ["mix", "--mix", "normal=1,draem=1,cutpaste=1,prn-hoa=1"]]


def test_parse_size():
    assert parse_size("256") == ImageSize(256, 256) and str(parse_size("256")) == "256"
    size = parse_size("256x512")
    assert size.shape == (256, 512) and size.dsize == (512, 256) and str(size) == "256x512"
    assert ImageSize.from_record({"size": 64}) == ImageSize(64, 64)
    assert ImageSize.from_record({"size": "32x96", "height": 32, "width": 96}) == ImageSize(32, 96)
    for bad in ("abc", "0x5", "256x", "x256", "12.5", str(MAX_SIDE + 1), f"64x{MAX_SIDE + 1}"):
        with pytest.raises(SynthError):
            parse_size(bad)


@pytest.mark.parametrize("size", ["abc", "0x5", "256x", "100000"])
def test_bad_size_is_one_line_and_status_2(size, tmp_path, capsys):
    status, _, err = run_cli(["gen", "-g", "cutpaste", "--size", size, "-n", 2, "--out", tmp_path / "o"], capsys)
    assert status == 2 and err.startswith("error:") and "--size" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_stretch_note_names_large_distortions():
    assert stretch_note((300, 600), ImageSize(256, 512)) is None
    assert "aspect" in stretch_note((3, 5000), ImageSize(256, 256))
    assert "enlarged" in stretch_note((1, 1), ImageSize(8, 8))


def test_stretched_inputs_get_one_warning_line(tmp_path, caplog):
    rng = np.random.default_rng(0)
    for name, shape in (("a", (1, 1)), ("b", (3, 500)), ("c", (40, 40))):
        write_image(tmp_path / "parts" / f"{name}.png", rng.integers(0, 256, (*shape, 3), dtype=np.uint8))
    with caplog.at_level(logging.WARNING, logger="synth"):
        category = load_category(tmp_path, "parts", layout="folder", size=32)
    assert all(image.shape == (32, 32, 3) for image in category.train_images)
    notes = [r.message for r in caplog.records if "distorted" in r.message]
    assert len(notes) == 1 and "2 of 3 images" in notes[0]


def test_perlin_mask_and_grid_shuffle_keep_a_non_square_shape():
    mask = perlin_mask((HEIGHT, WIDTH), np.random.default_rng(1))
    assert mask.shape == (HEIGHT, WIDTH) and set(np.unique(mask)) <= {0, 255}
    image = np.arange(HEIGHT * WIDTH * 3, dtype=np.int64).reshape(HEIGHT, WIDTH, 3)
    shuffled, order = shuffle_grid(image, 4, np.random.default_rng(2))
    tiles = [image[r * 8:(r + 1) * 8, c * 24:(c + 1) * 24] for r in range(4) for c in range(4)]
    for k, source in enumerate(order):
        r, c = divmod(k, 4)
        assert np.array_equal(shuffled[r * 8:(r + 1) * 8, c * 24:(c + 1) * 24], tiles[source])


def _rows(out: Path) -> list[dict]:
    return pq.read_table(out / "data").to_pylist()


def _decode(cell: dict, flag: int) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(cell["bytes"], np.uint8), flag)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if flag == cv2.IMREAD_COLOR else image


def check_aligned(rows: list[dict], category, changes: bool = True) -> None:
    """Every row is HEIGHT x WIDTH and changes its source image exactly where (inside) its mask says."""
    for row in rows:
        image, mask = _decode(row["image"], cv2.IMREAD_COLOR), _decode(row["mask"], cv2.IMREAD_GRAYSCALE)
        assert (row["height"], row["width"]) == (HEIGHT, WIDTH)
        assert image.shape == (HEIGHT, WIDTH, 3) and mask.shape == (HEIGHT, WIDTH)
        source = category.train_images[category.train_ids.index(row["source"])]
        changed = (image != source).any(axis=2)
        assert not (changed & (mask == 0)).any()
        if changes:
            assert changed.any() == mask.any()


@pytest.mark.parametrize("generator", GENERATORS, ids=[g[0] for g in GENERATORS])
def test_every_generator_makes_aligned_non_square_rows(generator, tmp_path, capsys):
    out = tmp_path / "out"
    status, _, err = run_cli(["gen", "-g", *generator, "--category", "brick", "--size", f"{HEIGHT}x{WIDTH}",
                              "-n", 8, "--out", out], capsys)
    assert status == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["size"], manifest["height"], manifest["width"]) == (f"{HEIGHT}x{WIDTH}", HEIGHT, WIDTH)
    check_aligned(_rows(out), load_category(None, "brick", size=ImageSize(HEIGHT, WIDTH)))


def test_blended_sdas_resizes_p_to_a_non_square_size(micro_model, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "sdas"
    status, _, err = run_cli(["gen", "-g", "sdas", "--category", "brick", "--model", micro_model, "--blend",
                              "--size", "16x32", "--steps", 2, "-n", 4, "--out", out], capsys)
    assert status == 0, err
    rows = _rows(out)
    assert all(row["upscaled"] and row["model_size"] == 16 and (row["height"], row["width"]) == (16, 32)
               for row in rows)
    brick = load_category(None, "brick", size=ImageSize(16, 32))
    for row in rows:
        image, mask = _decode(row["image"], cv2.IMREAD_COLOR), _decode(row["mask"], cv2.IMREAD_GRAYSCALE)
        assert image.shape == (16, 32, 3) and mask.shape == (16, 32) and mask.any()
        changed = (image != brick.train_images[brick.train_ids.index(row["source"])]).any(axis=2)
        assert not (changed & (mask == 0)).any()


def test_raw_sdas_refuses_a_non_square_size(micro_model, tmp_path, capsys):  # noqa: F811
    status, _, err = run_cli(["gen", "-g", "sdas", "--category", "brick", "--model", micro_model,
                              "--size", "16x32", "-n", 2, "--out", tmp_path / "raw"], capsys)
    assert status == 2 and "needs --blend" in err and len(err.strip().splitlines()) == 1


def test_non_square_preview_and_export(tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    assert run_cli(["preview", "-g", "cutpaste", "--size", "16x48", "-n", 2, "--tile", 20, "--out", sheet],
                   capsys)[0] == 0
    assert cv2.imread(str(sheet)).shape == (3 * 20 + 4 * 4, 2 * 60 + 3 * 4, 3)  # tiles keep the 1:3 aspect
    out = tmp_path / "set"
    assert run_cli(["gen", "-g", "cutpaste", "--size", "16x48", "-n", 3, "--out", out], capsys)[0] == 0
    assert run_cli(["export", out, "--format", "mvtec", "--out", tmp_path / "export"], capsys)[0] == 0
    normals = sorted((tmp_path / "export/brick/train/good").glob("*.png"))
    assert normals and cv2.imread(str(normals[0])).shape == (16, 48, 3)


@pytest.mark.slow
def test_real_magnetic_tile_at_256x512(tmp_path, capsys):
    data = real_data("mtd")
    out = tmp_path / "tile"
    status, _, err = run_cli(["gen", "-g", "cutpaste", "--data", data, "--category", "magnetic_tile",
                              "--size", "256x512", "-n", 4, "--out", out], capsys)
    assert status == 0, err
    assert {(row["height"], row["width"]) for row in _rows(out)} == {(256, 512)}
