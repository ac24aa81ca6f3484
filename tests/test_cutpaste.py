"""CutPaste generators: masks match the changed pixels, parameters in range, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from synth.generators import available_generators, create_generator, per_sample_rng
from synth.errors import SynthError

NAMES = ["cutpaste", "cutpaste-scar", "cutpaste-union", "cutpaste-3way"]


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for _ in range(4)]


@pytest.mark.parametrize("name", NAMES)
def test_mask_covers_exactly_the_changed_pixels(name, images):
    generator = create_generator(name)
    for index in range(40):
        normal = images[index % len(images)]
        sample = generator.generate(normal, per_sample_rng(0, index))
        assert sample.image.shape == normal.shape and sample.image.dtype == np.uint8
        assert sample.mask.shape == normal.shape[:2] and set(np.unique(sample.mask)) <= {0, 255}
        changed = (sample.image != normal).any(axis=2)
        inside = sample.mask > 0
        assert not (changed & ~inside).any(), "pixels changed outside the mask"
        if inside.any():  # on noise images nearly every pasted pixel differs
            assert changed[inside].mean() > 0.9
        else:
            assert name == "cutpaste-3way" and sample.params["variant"] == "normal"


def test_patch_parameters_in_range(images):
    generator = create_generator("cutpaste")
    for index in range(50):
        params = generator.generate(images[0], per_sample_rng(1, index)).params
        area = params["patch_height"] * params["patch_width"] / 96**2
        assert 0.015 < area < 0.16
        assert 0.25 < params["patch_width"] / params["patch_height"] < 4.0
        assert all(0.9 <= params[k] <= 1.1 for k in ("brightness", "contrast", "saturation"))
        assert -0.1 <= params["hue"] <= 0.1


def test_scar_parameters_in_range(images):
    generator = create_generator("cutpaste-scar")
    for index in range(50):
        params = generator.generate(images[0], per_sample_rng(2, index)).params
        assert 2 <= params["patch_width"] <= 16 and 10 <= params["patch_height"] <= 25
        assert -45 <= params["rotation"] <= 45


def test_union_uses_both_variants(images):
    generator = create_generator("cutpaste-union")
    variants = {generator.generate(images[0], per_sample_rng(3, i)).params["variant"] for i in range(40)}
    assert variants == {"cutpaste", "scar"}


def test_same_seed_and_index_same_sample(images):
    generator = create_generator("cutpaste-union")
    a = generator.generate(images[1], per_sample_rng(5, 17))
    b = generator.generate(images[1], per_sample_rng(5, 17))
    c = generator.generate(images[1], per_sample_rng(5, 18))
    assert (a.image == b.image).all() and a.params == b.params
    assert not (a.image == c.image).all()


def test_registry():
    assert set(NAMES) <= set(available_generators())
    with pytest.raises(SynthError, match="unknown generator"):
        create_generator("nope")


def test_scar_pixels_are_the_pasted_patch_without_a_dark_rim():
    flat = np.full((64, 64, 3), 200, np.uint8)  # a constant patch stays constant under colour jitter
    generator = create_generator("cutpaste-scar")
    for index in range(20):
        sample = generator.generate(flat, per_sample_rng(0, index))
        inside = sample.image[sample.mask > 0]
        assert len(np.unique(inside, axis=0)) == 1, index
