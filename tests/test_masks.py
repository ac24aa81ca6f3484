"""Perlin, foreground and anomaly masks."""

from __future__ import annotations

import numpy as np
import pytest

from synth.errors import SynthError
from synth.masks import anomaly_mask, default_rule, foreground_mask, parse_rule, perlin_mask, perlin_noise
from synth.masks.foreground import REALNET_RULES


def test_perlin_noise_range_and_shape():
    rng = np.random.default_rng(0)
    noise = perlin_noise((64, 48), (4, 8), rng)
    assert noise.shape == (64, 48)
    assert -1.5 < noise.min() < 0 < noise.max() < 1.5


def test_perlin_mask_binary_and_deterministic():
    masks = [perlin_mask((64, 64), np.random.default_rng(i)) for i in range(20)]
    assert all(set(np.unique(m)) <= {0, 255} for m in masks)
    coverage = np.mean([m.mean() / 255 for m in masks])
    assert 0.005 < coverage < 0.5
    assert (perlin_mask((64, 64), np.random.default_rng(3)) == masks[3]).all()


def bright_disc(size: int = 64) -> np.ndarray:
    image = np.full((size, size, 3), 20, np.uint8)
    yy, xx = np.mgrid[:size, :size]
    image[(yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2] = 220
    return image


def test_foreground_rules_on_a_disc():
    image = bright_disc()
    otsu = foreground_mask(image, "otsu")
    assert otsu[32, 32] == 255 and otsu[2, 2] == 0
    inverted = foreground_mask(image, "otsu-inv")
    assert inverted[32, 32] == 0 and inverted[2, 2] == 255
    auto = foreground_mask(image, "auto")
    assert (auto == otsu).all()
    assert foreground_mask(image, "none").min() == 255


def test_auto_keeps_a_surface_that_fills_the_frame_whole():
    rng = np.random.default_rng(0)
    stripes = np.where((np.arange(64) // 8) % 2, 200, 60).astype(np.uint8)  # a woven-like texture
    texture = np.clip(stripes[None, :, None] + rng.normal(0, 5, (64, 64, 3)), 0, 255).astype(np.uint8)
    assert foreground_mask(texture, "otsu").mean() / 255 == pytest.approx(0.5, abs=0.1)  # OTSU splits the threads
    assert foreground_mask(texture, "auto").min() == 255  # auto: both sides reach the border, a surface
    framed = bright_disc()
    framed[:, :2] = 220  # the object touches one side of the frame: 1/8 of the border
    assert foreground_mask(framed, "auto").min() == 255
    framed = bright_disc()
    framed[:2, 30:32] = 220  # a speck on the border (under 5 % of it) still leaves an object
    assert foreground_mask(framed, "auto")[2, 2] == 0


def test_default_rules_follow_realnet():
    assert default_rule("bottle") == "otsu-inv"
    assert default_rule("pill") == "otsu"
    assert default_rule("hazelnut") == "triangle"
    assert default_rule("cable") == "none"
    assert default_rule("metal_plate") == "otsu-inv,open=0"  # MPDD: grey OTSU, dark side, closing only
    assert default_rule("pcb1") == "triangle,channel=blue,close=8,open=3"
    assert default_rule("02") == "none" and default_rule("my_part") == "auto"
    assert all(parse_rule(rule) for rule in REALNET_RULES.values())
    with pytest.raises(SynthError, match="unknown foreground rule"):
        foreground_mask(bright_disc(), "magic")
    for bad in ("otsu,channel=purple", "otsu,close=-1", "otsu,size=3"):
        with pytest.raises(SynthError, match="bad option"):
            parse_rule(bad)


def test_channel_and_morphology_options():
    image = bright_disc()
    image[image[..., 0] == 220] = (0, 0, 255)  # a blue disc on a red background
    image[image[..., 0] == 20] = (255, 0, 0)
    disc = foreground_mask(bright_disc(), "otsu")
    assert (foreground_mask(image, "otsu,channel=blue") == disc).all()
    assert (foreground_mask(image, "otsu,channel=red") == 255 - disc).all()
    lined = bright_disc()
    lined[8:10, 4:60] = 220  # a 2-pixel line: an opening of 6 removes it, closing alone keeps it
    assert foreground_mask(lined, "otsu")[4:14, 10:50].max() == 0
    assert (foreground_mask(lined, "otsu,open=0")[4:14, 10:50].max(axis=0) == 255).all()  # in every column


def test_anomaly_mask_nonempty_inside_foreground():
    foreground = foreground_mask(bright_disc(), "otsu")
    for seed in range(30):
        mask = anomaly_mask(foreground, np.random.default_rng(seed))
        assert mask.any()
        assert not (mask & ~foreground).any()


def test_anomaly_mask_gives_up_on_empty_foreground():
    with pytest.raises(SynthError, match="non-empty anomaly mask"):
        anomaly_mask(np.zeros((32, 32), np.uint8), np.random.default_rng(0))
