"""The training remedies against colour casts: the loss terms and the offset noise."""

from __future__ import annotations

import pytest
import torch

from synth.diffusion.losses import (LOSSES, OFFSET_STRENGTH, hybrid_loss, image_mean_loss, training_noise)
from synth.diffusion.schedule import Schedule, q_sample
from synth.errors import SynthError


def test_image_mean_loss_is_zero_for_an_exact_prediction_and_positive_otherwise():
    noise = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(image_mean_loss(noise.clone(), noise), torch.zeros(4))
    shifted = noise.clone()
    shifted[1, 2] += 0.05  # a colour offset in one channel of one image
    loss = image_mean_loss(shifted, noise)
    assert loss[1] == pytest.approx(16 * 16 * 0.05 ** 2 / 3, rel=1e-4)
    assert torch.equal(loss[[0, 2, 3]], torch.zeros(3))
    # a change with zero image mean (a checkerboard) is not this term's business
    checkerboard = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2 * 2.0 - 1.0
    assert image_mean_loss(noise + 0.3 * checkerboard, noise).abs().max() < 1e-9


def test_hybrid_loss_mean_remedy_adds_exactly_the_weighted_term():
    schedule = Schedule.linear()
    generator = torch.Generator().manual_seed(1)
    x0 = torch.rand(2, 3, 8, 8, generator=generator) * 2 - 1
    noise = torch.randn(x0.shape, generator=generator)
    index = torch.tensor([10, 500])
    x_t = q_sample(schedule, x0, index, noise)
    output = torch.cat([noise + 0.1, torch.zeros_like(noise)], dim=1)
    paper, mse, vlb = hybrid_loss(schedule, output, x0, x_t, index, noise, "paper")
    mean, mse2, _ = hybrid_loss(schedule, output, x0, x_t, index, noise, "mean")
    assert torch.equal(mse, mse2)
    from synth.diffusion.losses import MEAN_WEIGHT

    assert float(mean - paper) == pytest.approx(MEAN_WEIGHT * 64 * 0.01, rel=1e-3)
    exact = torch.cat([noise, torch.zeros_like(noise)], dim=1)
    assert float(hybrid_loss(schedule, exact, x0, x_t, index, noise, "mean")[0]) == pytest.approx(
        float(hybrid_loss(schedule, exact, x0, x_t, index, noise, "paper")[0]))


def test_offset_noise_adds_one_constant_per_image_and_channel():
    noise = torch.randn(5, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    offset = training_noise(noise, "offset", torch.Generator().manual_seed(3)) - noise
    assert torch.allclose(offset, offset[:, :, :1, :1].expand_as(offset), atol=1e-6)
    assert offset.abs().max() > 0 and offset.abs().max() < 6 * OFFSET_STRENGTH
    for name in ("paper", "mean"):
        assert torch.equal(training_noise(noise, name, torch.Generator().manual_seed(3)), noise)
    assert set(LOSSES) == {"offset", "paper", "mean"}
    with pytest.raises(SynthError, match="unknown loss"):
        training_noise(noise, "bogus", torch.Generator())


def test_remedies_share_images_timesteps_and_white_noise():
    from synth.diffusion.data import load_training_set
    from synth.diffusion.train import make_batch

    data = load_training_set(None, ["brick"], 16, None)
    paper = make_batch(data, 0, 3, 4, 1000, True, "paper")
    offset = make_batch(data, 0, 3, 4, 1000, True, "offset")
    for a, b in zip(paper[:3], offset[:3]):
        assert torch.equal(a, b)
    difference = offset[3] - paper[3]
    assert torch.allclose(difference, difference[:, :, :1, :1].expand_as(difference), atol=1e-6)
