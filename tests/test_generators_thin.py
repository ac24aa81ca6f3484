"""NSA, thin strokes, simplex noise and smooth intensity changes: masks that match the change, non-square images, determinism, knobs, mix, gen."""

from __future__ import annotations

import cv2
import datasets
import numpy as np
import pytest

from synth.errors import SynthError
from synth.generators import GeneratorSettings, create_generator, per_sample_rng
from synth.generators.blending import poisson_paste
from synth.generators.nsa import Nsa
from synth.generators.intensity import SmoothIntensity
from synth.generators.simplex import Simplex
from synth.generators.stroke_geometry import StrokeShape
from synth.generators.strokes import Strokes
from tests.conftest import run_cli

HEIGHT, WIDTH = 48, 96


def texture(seed: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A smooth random grey texture with some colour, non-square."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.normal(128, 60, (height, width, 3)).astype(np.float32), (0, 0), 1.5)
    return np.clip(noise, 0, 255).astype(np.uint8)


def nsa(**kwargs) -> Nsa:
    return Nsa([texture(k) for k in range(4)], [f"d{k}" for k in range(4)], **kwargs)


def changed(sample, normal: np.ndarray) -> np.ndarray:
    return (sample.image != normal).any(axis=2)


@pytest.mark.parametrize("make", [nsa, Strokes, Simplex, SmoothIntensity],
                         ids=["nsa", "strokes", "simplex", "smooth-intensity"])
def test_non_square_sample_changes_only_inside_its_mask(make):
    generator, normal = make(), texture(10)
    for i in range(6):
        sample = generator.generate(normal, per_sample_rng(0, i))
        assert sample.image.shape == normal.shape and sample.image.dtype == np.uint8
        assert sample.mask.shape == (HEIGHT, WIDTH) and set(np.unique(sample.mask)) == {0, 255}
        assert not (changed(sample, normal) & (sample.mask == 0)).any()
        assert set(sample.params) == set(generator.columns)


@pytest.mark.parametrize("height, width", [(32, 32), (32, 64), (64, 32)])
def test_small_images_still_get_anomalies(height, width):
    normal = texture(21, height, width)
    donors = [texture(k, height, width) for k in range(3)]
    for generator in (Nsa(donors, ["a", "b", "c"]), Strokes(), Simplex(), SmoothIntensity()):
        for i in range(10):
            assert generator.generate(normal, per_sample_rng(0, i)).mask.any()


def test_nsa_on_too_small_an_image_says_why():
    with pytest.raises(SynthError, match="32 px"):
        Nsa([texture(0, 16, 40)], ["a"]).generate(texture(1, 16, 40), per_sample_rng(0, 0))


@pytest.mark.parametrize("make", [Strokes, Simplex, SmoothIntensity], ids=["strokes", "simplex", "smooth-intensity"])
def test_mask_is_exactly_the_changed_pixels(make):
    normal = texture(11)
    for i in range(6):
        sample = make().generate(normal, per_sample_rng(1, i))
        assert np.array_equal(changed(sample, normal), sample.mask > 0)


def test_simplex_changes_only_its_box_smoothly_and_alike_in_every_channel():
    normal = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    for i in range(6):
        sample = Simplex(patch=(0.3, 0.6)).generate(normal, per_sample_rng(3, i))
        top, left, height, width = map(int, sample.params["box"].split(","))
        assert HEIGHT * 0.3 - 1 <= height < HEIGHT * 0.6 + 1 and WIDTH * 0.3 - 1 <= width < WIDTH * 0.6 + 1
        inside = np.zeros((HEIGHT, WIDTH), bool)
        inside[top:top + height, left:left + width] = True
        assert not (sample.mask[~inside]).any()
        delta = sample.image.astype(int) - normal
        assert (delta[..., 0] == delta[..., 1]).all() and (delta[..., 0] == delta[..., 2]).all()
        box = delta[top:top + height, left:left + width, 0]
        assert np.abs(np.diff(box, axis=1)).mean() < np.abs(box).mean()  # low frequency: neighbours alike


def test_simplex_defaults_follow_rd_plus_plus_at_256_px():
    normal = np.full((256, 256, 3), 128, np.uint8)
    for i in range(20):
        sample = Simplex().generate(normal, per_sample_rng(4, i))
        _, _, height, width = map(int, sample.params["box"].split(","))
        assert 10 <= height < 32 and 10 <= width < 32 and sample.params["scale"] == 0.2


def test_smooth_intensity_is_broad_one_signed_per_region_and_ramps_up_from_the_edge():
    normal = np.full((128, 128, 3), 100, np.uint8)
    normal[::2] = 140  # grey-level std 20
    areas = []
    for i in range(30):
        sample = SmoothIntensity().generate(normal, per_sample_rng(5, i))
        delta = sample.image.astype(int) - normal
        assert (delta[..., 0] == delta[..., 1]).all() and (delta[..., 0] == delta[..., 2]).all()
        assert sample.image.min() >= 100 and sample.image.max() <= 140  # clipped to the image's range
        assert 1 <= sample.params["num_regions"] == len(sample.params["regions"].split(";")) <= 4
        areas.append((sample.mask > 0).mean())
        if sample.params["num_regions"] == 1:
            changed = np.abs(delta[..., 0])[sample.mask > 0]
            region = (sample.mask > 0).astype(np.uint8)
            inner = cv2.erode(region, np.ones((5, 5), np.uint8)) > 0
            rim = (region > 0) & ~inner
            if inner.any():  # the change grows from the edge inwards
                assert np.abs(delta[..., 0])[inner].mean() >= np.abs(delta[..., 0])[rim].mean()
            assert changed.max() <= 40
    assert 0.01 < np.median(areas) < 0.3  # broad: regions of 6-80 % of a side


@pytest.mark.parametrize("make, normal, scales", [
    (SmoothIntensity, texture(22), (0.05, 0.2, 0.8)),
    (lambda scale: Simplex(patch=(0.5, 0.8), scale=scale), np.full((HEIGHT, WIDTH, 3), 128, np.uint8), (0.05, 0.2, 0.5)),
], ids=["smooth-intensity", "simplex"])
def test_scale_knob_is_monotonic(make, normal, scales):
    changes = [np.mean([mean_change(make(scale=(k, k)).generate(normal, per_sample_rng(0, i)), normal)
                        for i in range(8)]) for k in scales]
    assert changes[0] < changes[1] < changes[2]


def test_nsa_mask_is_mostly_changed_pixels_inside_the_pasted_boxes():
    normal = texture(12)
    sample = nsa().generate(normal, per_sample_rng(2, 0))
    assert changed(sample, normal).sum() >= 0.8 * (sample.mask > 0).sum()
    boxes = np.zeros((HEIGHT, WIDTH), bool)
    for patch in sample.params["patches"].split(";"):
        top, left, height, width = map(int, patch.split(">")[1].split("@")[0].split(","))
        boxes[top:top + height, left:left + width] = True
    assert sample.params["num_patches"] == len(sample.params["patches"].split(";"))
    assert not ((sample.mask > 0) & ~boxes).any()


@pytest.mark.parametrize("make", [nsa, Strokes, Simplex, SmoothIntensity],
                         ids=["nsa", "strokes", "simplex", "smooth-intensity"])
def test_same_seed_same_bytes_other_seed_differs(make):
    normal = texture(13)
    a, b, c = (make().generate(normal, per_sample_rng(seed, 3)) for seed in (5, 5, 6))
    assert a.image.tobytes() == b.image.tobytes() and a.mask.tobytes() == b.mask.tobytes() and a.params == b.params
    assert a.image.tobytes() != c.image.tobytes()


def mean_change(sample, normal: np.ndarray) -> float:
    inside = sample.mask > 0
    return float(np.abs(sample.image.astype(float) - normal)[inside].mean())


def test_strokes_contrast_knob_is_monotonic():
    normal = texture(14)
    changes = [np.mean([mean_change(Strokes(contrast=(c, c)).generate(normal, per_sample_rng(0, i)), normal)
                        for i in range(8)]) for c in (0.5, 2.0, 6.0)]
    assert changes[0] < changes[1] < changes[2]


def test_strokes_polarity_darkens_or_brightens():
    normal = texture(15)
    for polarity, sign in (("dark", -1), ("bright", 1)):
        sample = Strokes(polarity=polarity).generate(normal, per_sample_rng(0, 0))
        inside = sample.mask > 0
        assert sign * (sample.image.astype(float) - normal)[inside].mean() > 0
        assert sample.params["polarity"] == polarity


def test_nsa_strength_knob_is_monotonic():
    normal = texture(16)
    changes = [np.mean([mean_change(nsa(strength=k).generate(normal, per_sample_rng(0, i)), normal)
                        for i in range(6)]) for k in (0.5, 1.0, 2.0)]
    assert changes[0] < changes[1] < changes[2]


def test_foreground_rule_keeps_strokes_and_noise_on_the_object():
    normal = texture(17)
    normal[:, :WIDTH // 2] = 5  # dark background on the left: otsu keeps the bright right half
    for make in (Strokes, SmoothIntensity, lambda foreground: Simplex(patch=(0.5, 0.9), foreground=foreground)):
        for i in range(4):
            sample = make(foreground="otsu").generate(normal, per_sample_rng(0, i))
            assert not sample.mask[:, :WIDTH // 2 - 2].any()


def test_wide_strokes_stay_thin_by_default_and_follow_the_width_knob():
    normal = texture(18)
    thin = Strokes(StrokeShape(branch=0.0, width=(1, 1))).generate(normal, per_sample_rng(0, 0))
    wide = Strokes(StrokeShape(branch=0.0, width=(6, 6))).generate(normal, per_sample_rng(0, 0))
    assert (thin.mask > 0).sum() < (wide.mask > 0).sum()


def test_poisson_paste_changes_only_the_target_box():
    image, patch = texture(19), texture(20, 20, 30)
    out = poisson_paste(image, patch, np.full((20, 30), 255, np.uint8), 10, 40)
    assert out is not None
    outside = np.ones((HEIGHT, WIDTH), bool)
    outside[10:30, 40:70] = False
    assert np.array_equal(out[outside], image[outside]) and not np.array_equal(out, image)
    assert poisson_paste(image, patch[:5, :5], np.full((5, 5), 255, np.uint8), 10, 40) is None


@pytest.mark.parametrize("option, value", [("width", "0:2"), ("width", "1.5"), ("polarity", "grey"),
                                           ("contrast", "3:1"), ("branch", "2"), ("curvature", "10:20")])
def test_bad_stroke_options_are_one_line_errors(option, value):
    with pytest.raises(SynthError, match=option):
        create_generator("strokes", GeneratorSettings(category="brick", extra={option: value}))


@pytest.mark.parametrize("option, value", [("patch", "0:0.5"), ("patch", "0.5:2"), ("scale", "0"), ("scale", "x")])
def test_bad_simplex_options_are_one_line_errors(option, value):
    with pytest.raises(SynthError, match=option):
        create_generator("simplex", GeneratorSettings(category="brick", extra={option: value}))


@pytest.mark.parametrize("value", ["0", "-1", "x", "0.5:0.1"])
def test_bad_smooth_intensity_scale_is_a_one_line_error(value):
    with pytest.raises(SynthError, match="scale"):
        create_generator("smooth-intensity", GeneratorSettings(category="brick", extra={"scale": value}))


@pytest.mark.parametrize("option, value", [("clone", "blend"), ("patches", "0"), ("patches", "2.5"),
                                           ("strength", "0.5:1"), ("strength", "0")])
def test_bad_nsa_options_are_one_line_errors(option, value):
    with pytest.raises(SynthError, match=option):
        create_generator("nsa", GeneratorSettings(category="brick", size=32, extra={option: value}))


def test_nsa_takes_its_donors_from_the_category():
    generator = create_generator("nsa", GeneratorSettings(category="brick", size=32))
    assert len(generator.donors) > 1 and generator.donors[0].shape == (32, 32, 3)
    sample = generator.generate(generator.donors[0], per_sample_rng(0, 0))
    assert sample.params["donor"] in generator.donor_ids


def test_mix_of_nsa_and_strokes_round_trips_through_gen(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["gen", "--generator", "mix", "--mix", "nsa=1,strokes=1,simplex=1,smooth-intensity=1", "--category", "brick", "--size", 48,
            "-n", 16, "--shard-size", 6, "-o", "contrast=2:3", "--out", out]
    status, _, err = run_cli(args, capsys)
    assert status == 0, err
    rows = datasets.load_dataset(str(out), split="train")
    assert set(rows["component"]) == {"nsa", "strokes", "simplex", "smooth-intensity"}
    for row in rows:
        mask = np.asarray(row["mask"])
        assert mask.shape == (48, 48) and mask.any()
        if row["component"] == "strokes":
            assert 2 <= row["contrast"] <= 3 and row["donor"] is None
        elif row["component"] == "simplex":
            assert row["scale"] == 0.2 and row["box"] and row["donor"] is None
        elif row["component"] == "smooth-intensity":
            assert row["num_regions"] >= 1 and row["regions"] and row["box"] is None
        else:
            assert row["donor"] and row["polarity"] is None
    again = tmp_path / "again"
    assert run_cli([*args[:-1], again], capsys)[0] == 0
    assert [p.read_bytes() for p in sorted((out / "data").glob("*.parquet"))] == \
        [p.read_bytes() for p in sorted((again / "data").glob("*.parquet"))]


def test_bad_option_through_the_cli_is_exit_2(tmp_path, capsys):
    status, _, err = run_cli(["gen", "--generator", "strokes", "--category", "brick", "--size", 32, "-n", 2,
                              "-o", "polarity=grey", "--out", tmp_path / "x"], capsys)
    assert status == 2 and err.strip().startswith("error:") and len(err.strip().splitlines()) == 1
