"""`synth export`: MVTec AD-style and folder exports read back pixel for pixel."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from synth.data import ImageSize
from synth.data.images import read_mask, read_rgb
from synth.data.layouts import read_mvtec
from tests.conftest import run_cli

SIZE = 48


def decode(cell: dict | None, flag: int) -> np.ndarray | None:
    return None if cell is None else cv2.imdecode(np.frombuffer(cell["bytes"], np.uint8), flag)


def rows(directory: Path) -> dict[int, dict]:
    table = pq.read_table(sorted((directory / "data").glob("*.parquet")), columns=["index", "image", "mask"])
    return {row["index"]: row for row in table.to_pylist()}


@pytest.fixture
def dataset(mvtec_tree, tmp_path, capsys) -> Path:
    """12 cutpaste-3way rows of the fixture's widget category: anomalies with masks and untouched rows."""
    out = tmp_path / "widget-3way"
    args = ["gen", "-g", "cutpaste-3way", "--data", mvtec_tree, "--category", "widget", "--size", SIZE, "-n", 12,
            "--shard-size", 5, "--out", out]
    assert run_cli(args, capsys)[0] == 0
    return out


def test_mvtec_export_reads_back_with_the_mvtec_reader(dataset, mvtec_tree, tmp_path, capsys):
    out = tmp_path / "export"
    status, stdout, err = run_cli(["export", dataset, "--format", "mvtec", "--data", mvtec_tree, "--out", out], capsys)
    assert status == 0, err
    category = read_mvtec(out, "widget", ImageSize.square(SIZE))
    assert len(category) == 6  # train/good: the fixture's normal images
    expected = rows(dataset)
    empty = {i for i, row in expected.items() if not decode(row["mask"], cv2.IMREAD_GRAYSCALE).any()}
    assert 0 < len(empty) < 12
    assert len(category.test) == 12
    for item in category.test:
        row = expected[int(item.path.stem)]
        image, mask = item.load(category.size)
        assert np.array_equal(image, cv2.cvtColor(decode(row["image"], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
        assert np.array_equal(mask, decode(row["mask"], cv2.IMREAD_GRAYSCALE))
        assert item.label == (int(item.path.stem) not in empty)
        assert item.defect == ("good" if item.label == 0 else "cutpaste-3way")
    assert f"{12 - len(empty)} anomalous images" in stdout


def test_folder_export_puts_images_beside_masks(dataset, tmp_path, capsys):
    out = tmp_path / "folder"
    assert run_cli(["export", dataset, "--format", "folder", "--out", out], capsys)[0] == 0
    expected = rows(dataset)
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"{i:03d}.png" for i in range(12)]
    for index, row in expected.items():
        image = read_rgb(out / "images" / f"{index:03d}.png")
        assert np.array_equal(image, cv2.cvtColor(decode(row["image"], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
        mask = read_mask(out / "masks" / f"{index:03d}.png", ImageSize.square(SIZE))
        assert np.array_equal(mask, decode(row["mask"], cv2.IMREAD_GRAYSCALE))
    assert not (out / "normal").exists()  # no --data: no normal images


def test_export_refuses_a_non_empty_folder_and_an_incomplete_dataset(dataset, tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("mine")
    status, _, err = run_cli(["export", dataset, "--out", tmp_path / "full"], capsys)
    assert status == 2 and "not empty" in err
    (dataset / "data" / "train-00002-of-00003.parquet").unlink()
    manifest = (dataset / "manifest.json").read_text().replace('"complete": true', '"complete": false')
    (dataset / "manifest.json").write_text(manifest)
    status, _, err = run_cli(["export", dataset, "--out", tmp_path / "new"], capsys)
    assert status == 2 and "incomplete" in err and not (tmp_path / "new").exists()
