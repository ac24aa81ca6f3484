"""The hybrid objective of Improved DDPM (L_simple + λ·L_vlb, stop-gradient on the mean) and the
remedies that make a from-scratch model learn the image-wide mean of the noise.

Remedies (``LOSSES``; see docs/diffusion.md "Colour casts and the training remedy"):
- ``paper``: the plain hybrid loss of RealNet / Improved DDPM.
- ``offset``: offset noise (training only): every training ε gets ``OFFSET_STRENGTH``·N(0, 1) added
  per image and channel, so the image mean of the noise carries ~40x more of the loss at 64 px.
- ``mean``: an extra term H·W·mean_c (mean_hw(ε̂) − mean_hw(ε))², weighted ``MEAN_WEIGHT``: the error
  of the image-wide mean per channel, scaled to the variance of one pixel.
"""

from __future__ import annotations

import math

import torch

from synth.diffusion.schedule import Schedule, p_mean_log_variance, q_posterior_mean
from synth.errors import SynthError

VLB_WEIGHT = 0.001  # λ of Improved DDPM
LOSSES = ("offset", "paper", "mean")
DEFAULT_LOSS = "offset"
OFFSET_STRENGTH = 0.1  # offset noise: std of the per-image, per-channel constant added to ε
MEAN_WEIGHT = 0.1  # weight of the image-mean term of the "mean" remedy


def normal_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor,
              logvar2: torch.Tensor) -> torch.Tensor:
    """KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))), elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor,
                                        log_scale: torch.Tensor) -> torch.Tensor:
    """log p(x) of images in [−1, 1] quantised to 256 bins under N(mean, exp(log_scale)²), elementwise.

    Departure: the exact normal CDF (torch.special.ndtr) instead of guided-diffusion's tanh approximation.
    """
    centered = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = torch.special.ndtr(inv_std * (centered + 1.0 / 255.0))
    cdf_min = torch.special.ndtr(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))


def _mean_flat(values: torch.Tensor) -> torch.Tensor:
    return values.mean(dim=tuple(range(1, values.dim())))


def vlb_terms(schedule: Schedule, model_output: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor,
              index: torch.Tensor) -> torch.Tensor:
    """L_t per image in bits per dimension: KL to the true posterior (t > 0), decoder NLL (t = 0)."""
    true_mean = q_posterior_mean(schedule, x0, x_t, index)
    true_log_variance = schedule.posterior_log_variance_clipped[index].view(-1, 1, 1, 1)
    mean, log_variance = p_mean_log_variance(schedule, model_output, x_t, index, clip=False)
    kl = _mean_flat(normal_kl(true_mean, true_log_variance, mean, log_variance)) / math.log(2.0)
    nll = -_mean_flat(discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_variance)) / math.log(2.0)
    return torch.where(index == 0, nll, kl)


def training_noise(noise: torch.Tensor, loss: str, generator: torch.Generator) -> torch.Tensor:
    """The ε used to noise x0: ``noise`` itself, or with the offset of the ``offset`` remedy added.

    The offset is drawn from ``generator`` after ``noise``, so the remedies share batches, timesteps
    and white noise. Sampling always starts from and adds plain N(0, I) noise.
    """
    if loss not in LOSSES:
        raise SynthError(f"unknown loss {loss!r}; choose from {', '.join(LOSSES)}")
    offset = torch.randn(noise.shape[:2], generator=generator).to(noise.device)
    if loss != "offset":
        return noise
    return noise + OFFSET_STRENGTH * offset[:, :, None, None]


def image_mean_loss(eps: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """H·W·mean_c (mean_hw(ε̂) − mean_hw(ε))² per image: zero iff the image means of ε̂ and ε agree."""
    height, width = eps.shape[-2:]
    error = eps.float().mean(dim=(-2, -1)) - noise.float().mean(dim=(-2, -1))
    return height * width * (error ** 2).mean(dim=1)


def hybrid_loss(schedule: Schedule, model_output: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor,
                index: torch.Tensor, noise: torch.Tensor,
                loss: str = "paper") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, mse, vlb), each averaged over the batch; ``loss="mean"`` adds the image-mean term.

    L_vlb = Σ_t L_t is estimated by T·L_t at the sampled t, so λ·L_vlb = λ·T·L_t (= L_t for T = 1000,
    as in guided-diffusion). The ε half of the output is detached in the VLB term, so the VLB trains
    only the variance.
    """
    model_output = model_output.float()
    eps, v = model_output.chunk(2, dim=1)
    mse = _mean_flat((eps - noise) ** 2)
    frozen = torch.cat([eps.detach(), v], dim=1)
    vlb = vlb_terms(schedule, frozen, x0, x_t, index) * (VLB_WEIGHT * len(schedule))
    total = mse + vlb
    if loss == "mean":
        total = total + MEAN_WEIGHT * image_mean_loss(eps, noise)
    return total.mean(), mse.mean().detach(), vlb.mean().detach()
