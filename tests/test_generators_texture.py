"""DRAEM, PRN (HEA, HOA), normal and mix generators; DRAEM's augmentations; the Perlin noise."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from synth.data.textures import TextureSource
from synth.errors import SynthError
from synth.generators import GeneratorSettings, create_generator, per_sample_rng
from synth.generators import augment, prn
from synth.generators.draem import Draem
from synth.generators.prn import PrnHeterogeneous, PrnHomogeneous, shuffle_grid
from synth.masks import foreground_mask, perlin_noise
from tests.conftest import real_data, run_cli, write_image

SIZE = 64


def object_image(size: int = SIZE, seed: int = 0) -> np.ndarray:
    """A dark textured disc on a bright background: an object that otsu-inv finds."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), 230, np.uint8)
    cv2.circle(image, (size // 2, size // 2), size // 3, (40, 60, 80), -1)
    return np.clip(image.astype(int) + rng.integers(-8, 9, image.shape), 0, 255).astype(np.uint8)


def flat(value: int, size: int = SIZE) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


def constant_textures(*values: int) -> TextureSource:
    return TextureSource("test", [f"flat{v}" for v in values], lambda index, size: np.full((*size.shape, 3), values[index], np.uint8))


@pytest.fixture
def texture_dir(tmp_path: Path) -> Path:
    """ROOT/dtd/images/<class>/*.jpg with two classes of noise textures."""
    rng = np.random.default_rng(5)
    for name in ("banded", "dotted"):
        for i in range(3):
            write_image(tmp_path / "dtd" / "images" / name / f"{name}_{i}.jpg", rng.integers(0, 256, (40, 52, 3), np.uint8))
    return tmp_path


def settings(texture_dir: Path, **changes) -> GeneratorSettings:
    return GeneratorSettings(**{"category": "widget", "size": SIZE, "textures": texture_dir, **changes})


# --- generators --------------------------------------------------------------------------------

@pytest.mark.parametrize("name,rule", [("draem", "otsu-inv"), ("prn-hea", None), ("prn-hoa", None)])
def test_masks_inside_foreground_and_outside_untouched(texture_dir, name, rule):
    generator = create_generator(name, settings(texture_dir, foreground=rule, category="bottle"))  # bottle: otsu-inv
    for index in range(12):
        image = object_image(seed=index)
        sample = generator.generate(image, per_sample_rng(1, index))
        inside = sample.mask > 0
        assert inside.any() and set(np.unique(sample.mask)) <= {0, 255}
        assert not (inside & (foreground_mask(image, "otsu-inv") == 0)).any()
        assert (sample.image[~inside] == image[~inside]).all()
        assert sample.image.shape == image.shape and sample.image.dtype == np.uint8
        assert set(sample.params) == set(generator.columns)


def test_draem_is_unrestricted_by_default(texture_dir):
    generator = create_generator("draem", settings(texture_dir, category="bottle"))
    background = foreground_mask(object_image(), "otsu-inv") == 0
    masks = [generator.generate(object_image(), per_sample_rng(2, i)).mask for i in range(20)]
    assert any((m[background] > 0).any() for m in masks)


@pytest.mark.parametrize("cls,low,high", [(Draem, 0.0, 0.8), (PrnHeterogeneous, 0.2, 0.8)])
def test_texture_opacity_in_range(cls, low, high):
    generator = cls(constant_textures(40), num_ops=0)
    betas = []
    for index in range(150):
        sample = generator.generate(flat(200), per_sample_rng(3, index))
        values = sample.image[sample.mask > 0].astype(float)
        beta = (values.mean() - 40) / 160  # inside = (1 - β)·40 + β·200
        assert values.std() == 0 and abs(beta - sample.params["beta"]) < 1 / 160
        betas.append(beta)
    assert low - 1 / 160 <= min(betas) < low + 0.1 and high - 0.1 < max(betas) <= high + 1 / 160


def test_hoa_opacity_in_range(monkeypatch):
    monkeypatch.setattr(prn, "random_augment", lambda image, rng, count: (255 - image, "invert"))
    generator = PrnHomogeneous("none")
    betas = []
    for index in range(150):
        sample = generator.generate(flat(200), per_sample_rng(4, index))
        beta = (sample.image[sample.mask > 0].astype(float).mean() - 55) / 145
        assert abs(beta - sample.params["beta"]) < 1 / 145
        betas.append(beta)
    assert 0.2 - 1 / 145 <= min(betas) < 0.3 and 0.7 < max(betas) <= 0.8 + 1 / 145


@pytest.mark.parametrize("name", ["draem", "prn-hea", "prn-hoa", "normal", "mix"])
def test_same_seed_and_index_same_bytes(texture_dir, name):
    made = settings(texture_dir, mix={"normal": 1, "draem": 1, "prn-hoa": 1}, extra={"rotate_normal": "true"})
    image = object_image()
    runs = [[create_generator(name, made).generate(image, per_sample_rng(9, i)) for i in range(6)] for _ in range(2)]
    for a, b in zip(*runs):
        assert a.image.tobytes() == b.image.tobytes() and a.mask.tobytes() == b.mask.tobytes() and a.params == b.params
    if name != "normal":
        assert len({s.image.tobytes() for s in runs[0]}) > 1


def test_rows_record_texture_ops_and_beta(texture_dir):
    sample = create_generator("draem", settings(texture_dir)).generate(object_image(), per_sample_rng(0, 0))
    assert sample.params["texture"].split("/")[0] in {"banded", "dotted"}
    assert len(sample.params["ops"].split(";")) == 3 and 0 <= sample.params["beta"] <= 0.8
    assert sample.params["normal_rotation"] == 0.0  # off by default


def test_draem_rotates_the_normal_image_when_asked(texture_dir):
    generator = create_generator("draem", settings(texture_dir, extra={"rotate_normal": "yes"}))
    rotations = [generator.generate(object_image(), per_sample_rng(5, i)).params["normal_rotation"] for i in range(60)]
    rotated = [r for r in rotations if r != 0.0]
    assert 5 < len(rotated) < 35 and all(-90 <= r <= 90 for r in rotated)  # probability 0.3
    with pytest.raises(SynthError):
        create_generator("draem", settings(texture_dir, extra={"rotate_normal": "maybe"}))


def test_shuffle_grid_is_a_tile_permutation():
    image = np.arange(64 * 64 * 3, dtype=np.uint32).reshape(64, 64, 3)
    out, order = shuffle_grid(image, 8, np.random.default_rng(0))
    assert sorted(order) == list(range(64)) and order != list(range(64))
    for k, source in enumerate(order):
        dst, src = divmod(k, 8), divmod(source, 8)
        assert (out[dst[0] * 8:dst[0] * 8 + 8, dst[1] * 8:dst[1] * 8 + 8] ==
                image[src[0] * 8:src[0] * 8 + 8, src[1] * 8:src[1] * 8 + 8]).all()


def test_bad_generator_options(texture_dir):
    with pytest.raises(SynthError, match="foreground"):
        create_generator("prn-hea", settings(texture_dir, foreground="blob"))
    with pytest.raises(SynthError, match="grid"):
        create_generator("prn-hoa", settings(texture_dir, extra={"grid": "x"}))
    with pytest.raises(SynthError, match="grid"):
        create_generator("prn-hoa", settings(texture_dir, extra={"grid": "200"})).generate(object_image(), per_sample_rng(0, 0))


# --- mixtures ------------------------------------------------------------------------------------

def test_mix_frequencies_columns_and_components(texture_dir):
    weights = {"normal": 2.0, "draem": 1.0, "prn-hoa": 1.0}  # normalised to 0.5, 0.25, 0.25
    generator = create_generator("mix", settings(texture_dir, mix=weights))
    assert set(generator.columns) == {"component", "texture", "ops", "beta", "normal_rotation", "permutation"}
    image = object_image()
    samples = generator.generate_batch([image] * 400, [per_sample_rng(11, i) for i in range(400)])
    counts = {name: sum(s.params["component"] == name for s in samples) for name in weights}
    for name, weight in weights.items():
        p = weight / 4
        assert abs(counts[name] - 400 * p) < 4 * np.sqrt(400 * p * (1 - p)), counts
    for sample in samples:
        assert set(sample.params) == set(generator.columns)
        if sample.params["component"] == "normal":
            assert not sample.mask.any() and (sample.image == image).all() and sample.params["beta"] is None
        if sample.params["component"] == "prn-hoa":
            assert sample.params["texture"] is None and sample.params["permutation"]
    one = generator.generate(image, per_sample_rng(11, 7))
    assert one.params == samples[7].params and (one.image == samples[7].image).all()  # batch == one by one


@pytest.mark.parametrize("mix,message", [
    ({}, "needs --mix"), ({"draem": -1.0}, ">= 0"), ({"nosuch": 1.0}, "unknown generator"),
    ({"normal": 0.0}, "sum to zero"), ({"mix": 1.0}, "cannot contain"), ({"normal": float("nan")}, "finite"),
])
def test_bad_mix_spec(texture_dir, mix, message):
    with pytest.raises(SynthError, match=message):
        create_generator("mix", settings(texture_dir, mix=mix))


# --- augmentations ---------------------------------------------------------------------------------

def test_each_op_is_deterministic_and_keeps_shape():
    image = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), np.uint8)
    image.setflags(write=False)  # ops must not write into their input (textures are cached)
    for op in augment.DRAEM_OPS:
        out, description = op(image, np.random.default_rng(1))
        again, _ = op(image, np.random.default_rng(1))
        assert out.shape == image.shape and out.dtype == np.uint8 and (out == again).all()
        assert description.startswith(op.__name__.replace("affine_", "").split("_")[0])


def test_op_semantics():
    image = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    assert (augment.invert(image, np.random.default_rng(0))[0] == 255 - image).all()
    out, description = augment.posterize(image, np.random.default_rng(0))
    bits = int(description[len("posterize("):-1])
    assert len(np.unique(out)) == 2 ** bits
    solarized = [augment.solarize(image, np.random.default_rng(i)) for i in range(40)]
    applied = [(o, d) for o, d in solarized if d != "solarize(skipped)"]
    assert 5 < len(applied) < 35  # probability 0.5
    out, description = applied[0]
    threshold = float(description[len("solarize("):-1])
    assert 32 <= threshold <= 128 and (out[image < threshold] == image[image < threshold]).all()
    assert (out[image > threshold + 1] == 255 - image[image > threshold + 1]).all()


def test_random_augment_draws_distinct_ops_and_records_them():
    image = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), np.uint8)
    for seed in range(20):
        _, ops = augment.random_augment(image, np.random.default_rng(seed))
        names = [op.split("(")[0] for op in ops.split(";")]
        assert len(names) == 3 and len(set(names)) == 3


# --- Perlin noise ------------------------------------------------------------------------------------

def test_perlin_noise_matches_the_per_pixel_formula():
    """The matrix form equals DRAEM's corner-by-corner gradient noise."""
    shape, res = (24, 20), (4, 2)
    noise = perlin_noise(shape, res, np.random.default_rng(0))
    angles = 2 * np.pi * np.random.default_rng(0).random((res[0] + 1, res[1] + 1))
    fade = lambda t: 6 * t**5 - 15 * t**4 + 10 * t**3  # noqa: E731
    expected = np.zeros(shape)
    for y in range(shape[0]):
        for x in range(shape[1]):
            py, px = y * res[0] / shape[0], x * res[1] / shape[1]
            iy, ix = int(py), int(px)
            fy, fx = py - iy, px - ix
            for dy in (0, 1):
                for dx in (0, 1):
                    angle = angles[iy + dy, ix + dx]
                    weight = (fade(fy) if dy else 1 - fade(fy)) * (fade(fx) if dx else 1 - fade(fx))
                    expected[y, x] += weight * (np.cos(angle) * (fy - dy) + np.sin(angle) * (fx - dx))
    assert np.abs(noise - np.sqrt(2) * expected).max() < 1e-5


# --- command line and real data ------------------------------------------------------------------------

def test_cli_texture_errors_one_line_exit_2(tmp_path, capsys, mvtec_tree):
    (tmp_path / "empty").mkdir()
    for textures in (tmp_path / "missing", tmp_path / "empty"):
        status, _, err = run_cli(["gen", "-g", "draem", "--data", mvtec_tree, "--category", "widget", "-n", 2,
                                  "--out", tmp_path / "out", "--textures", textures], capsys)
        assert status == 2 and len(err.strip().splitlines()) == 1 and str(textures) in err
    status, _, err = run_cli(["gen", "-g", "mix", "--mix", "normal=1,bogus=1", "--data", mvtec_tree,
                              "--category", "widget", "-n", 2, "--out", tmp_path / "out"], capsys)
    assert status == 2 and "bogus" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_real_dtd_mpdd_draem_and_mix_shards(tmp_path, capsys):
    import datasets

    dtd, mpdd = real_data("dtd"), real_data("mpdd")
    out = tmp_path / "mix"
    status, _, err = run_cli(["gen", "-g", "mix", "--mix", "normal=0.5,draem=0.25,prn-hea=0.25", "--textures", dtd,
                              "--texture-classes", "banded,cracked", "--data", mpdd, "--category", "metal_plate",
                              "-n", 24, "--out", out], capsys)
    assert status == 0, err
    rows = datasets.load_dataset(str(out), split="train")
    assert len(rows) == 24 and set(rows["component"]) <= {"normal", "draem", "prn-hea"}
    textures = [t for t in rows["texture"] if t is not None]
    assert textures and all(t.split("/")[0] in {"banded", "cracked"} for t in textures)
