"""The diffusion process: respacing keeps ᾱ, the learned range stays between β̃_t and β_t, the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synth.diffusion.losses import discretized_gaussian_log_likelihood, hybrid_loss, normal_kl
from synth.diffusion.schedule import Schedule, linear_betas, p_mean_log_variance, space_timesteps
from synth.errors import SynthError


@pytest.mark.parametrize("steps", [20, 50, 100, 1000])
def test_respaced_alphas_cumprod_match_the_original(steps):
    full = Schedule.linear()
    respaced = Schedule.linear(steps=steps)
    kept = respaced.timesteps
    assert len(kept) == steps and kept[0] == 0 and kept[-1] == 999
    assert (kept[1:] > kept[:-1]).all()
    torch.testing.assert_close(respaced.alphas_cumprod, full.alphas_cumprod[kept], atol=0, rtol=1e-6)
    torch.testing.assert_close(torch.cumprod(1 - respaced.betas.double(), 0).float(), respaced.alphas_cumprod,
                               atol=0, rtol=1e-5)


def test_full_schedule_is_the_linear_one():
    torch.testing.assert_close(Schedule.linear().betas, torch.from_numpy(linear_betas()).float())


def test_space_timesteps_rejects_bad_counts():
    assert space_timesteps(1000, 2) == [0, 999]
    for steps in (0, 1001):
        with pytest.raises(SynthError):
            space_timesteps(1000, steps)


@pytest.mark.parametrize("steps", [None, 50])
def test_learned_range_variance_lies_between_posterior_and_beta(steps):
    schedule = Schedule.linear(steps=steps)
    generator = torch.Generator().manual_seed(0)
    x_t = torch.randn(4, 3, 8, 8, generator=generator)
    for index in range(1, len(schedule), 7):
        output = torch.randn(4, 6, 8, 8, generator=generator) * 2  # v partly outside [-1, 1]
        _, log_variance = p_mean_log_variance(schedule, output, x_t, index, clip=True)
        beta_tilde = schedule.posterior_log_variance_clipped[index]
        beta = schedule.log_betas[index]
        assert (log_variance >= beta_tilde - 1e-6).all() and (log_variance <= beta + 1e-6).all()
    for v, expected in ((-1.0, schedule.posterior_log_variance_clipped), (1.0, schedule.log_betas)):
        output = torch.cat([torch.zeros(1, 3, 1, 1), torch.full((1, 3, 1, 1), v)], dim=1)
        _, log_variance = p_mean_log_variance(schedule, output, x_t[:1, :, :1, :1], 5, clip=True)
        torch.testing.assert_close(log_variance, expected[5].expand(1, 3, 1, 1))


def test_normal_kl_and_decoder_likelihood():
    zeros = torch.zeros(3)
    assert torch.allclose(normal_kl(zeros, zeros, zeros, zeros), zeros)
    assert (normal_kl(zeros + 1, zeros, zeros, zeros) > 0).all()
    x = torch.tensor([-1.0, 0.0, 1.0])
    sharp = discretized_gaussian_log_likelihood(x, x, torch.full((3,), -8.0))
    assert torch.allclose(sharp, torch.zeros(3), atol=1e-4)  # all the mass in the right bin


def test_hybrid_loss_trains_variance_only_through_vlb():
    schedule = Schedule.linear()
    x0 = torch.rand(2, 3, 4, 4) * 2 - 1
    noise = torch.randn(2, 3, 4, 4)
    index = torch.tensor([0, 500])
    x_t = x0 * schedule.sqrt_alphas_cumprod[index].view(-1, 1, 1, 1) + \
        noise * schedule.sqrt_one_minus_alphas_cumprod[index].view(-1, 1, 1, 1)
    eps = noise.clone().requires_grad_(True)  # a perfect ε: the mse term and its gradient vanish
    v = torch.zeros(2, 3, 4, 4, requires_grad=True)
    loss, mse, vlb = hybrid_loss(schedule, torch.cat([eps, v], 1), x0, x_t, index, noise)
    loss.backward()
    assert mse == 0 and vlb > 0
    assert torch.count_nonzero(eps.grad) == 0 and torch.count_nonzero(v.grad) > 0
    assert np.isfinite(loss.item())
