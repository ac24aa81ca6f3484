"""Texture sources: DTD layout, plain folders, class filters, built-in fallback, errors."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from synth.data import ImageSize, textures
from synth.data.textures import builtin_textures, folder_textures, open_textures
from synth.errors import SynthError
from tests.conftest import real_data, write_image


@pytest.fixture
def dtd(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for name in ("banded", "cracked", "dotted"):
        for i in range(2):
            write_image(tmp_path / "dtd" / "images" / name / f"{name}_{i}.jpg", rng.integers(0, 256, (30, 45, 3), np.uint8))
    write_image(tmp_path / "dtd" / "labels" / "not_a_texture.png", np.zeros((4, 4, 3), np.uint8))
    return tmp_path


def test_dtd_layout_found_from_any_of_its_roots(dtd):
    expected = ["banded/banded_0.jpg", "banded/banded_1.jpg", "cracked/cracked_0.jpg", "cracked/cracked_1.jpg",
                "dotted/dotted_0.jpg", "dotted/dotted_1.jpg"]
    for root in (dtd, dtd / "dtd", dtd / "dtd" / "images"):
        assert folder_textures(root).ids == expected


def test_class_filters(dtd):
    assert {i.split("/")[0] for i in folder_textures(dtd, include=("banded", "dotted")).ids} == {"banded", "dotted"}
    assert {i.split("/")[0] for i in folder_textures(dtd, exclude=("banded",)).ids} == {"cracked", "dotted"}
    with pytest.raises(SynthError, match="unknown texture class woven"):
        folder_textures(dtd, include=("woven",))
    with pytest.raises(SynthError, match="no textures left"):
        folder_textures(dtd, include=("banded",), exclude=("banded",))


def test_any_folder_recursive_and_hidden_files_skipped(tmp_path):
    write_image(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    write_image(tmp_path / "deep" / "er" / "b.png", np.zeros((8, 8, 3), np.uint8))
    write_image(tmp_path / ".cache" / "c.png", np.zeros((8, 8, 3), np.uint8))
    assert folder_textures(tmp_path).ids == ["a.png", "deep/er/b.png"]


def test_missing_or_empty_folder_is_a_synth_error(tmp_path):
    with pytest.raises(SynthError, match="does not exist"):
        folder_textures(tmp_path / "nope")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(SynthError, match="no images"):
        folder_textures(tmp_path / "empty")


def test_textures_resized_cached_and_read_only(dtd):
    source = folder_textures(dtd)
    texture = source.image(2, ImageSize(32, 48))
    assert texture.shape == (32, 48, 3) and texture.dtype == np.uint8
    assert source.image(2, ImageSize(32, 48)) is texture and not texture.flags.writeable


def test_cache_is_bounded():
    source = textures.TextureSource("t", ["a", "b", "c"], lambda i, size: np.full((*size.shape, 3), i, np.uint8),
                                    cache_bytes=2 * 16 * 16 * 3)
    side = ImageSize.square(16)
    first = source.image(0, side)
    source.image(1, side), source.image(2, side)
    assert source.image(0, side) is not first and len(source._cache) == 2


def test_builtin_fallback_warns_once(caplog):
    open_textures.cache_clear()
    textures._say_builtin_once.cache_clear()
    with caplog.at_level(logging.WARNING, logger="synth"):
        first = open_textures(None, ("brick", "coffee"), (), ImageSize.square(32))
        open_textures(None, ("brick",), (), ImageSize.square(32))
    assert sum("built-in textures" in r.message for r in caplog.records) == 1
    assert {i.split("/")[0] for i in first.ids} == {"skimage:brick", "skimage:coffee"}
    assert first.image(0, ImageSize(32, 24)).shape == (32, 24, 3)
    with pytest.raises(SynthError, match="unknown texture class"):
        builtin_textures(("velvet",))


@pytest.mark.slow
def test_real_dtd():
    source = folder_textures(real_data("dtd"))
    assert len(source) >= 1000 and len({i.split("/")[0] for i in source.ids}) == 10
    assert source.image(0, ImageSize(64, 128)).shape == (64, 128, 3)
