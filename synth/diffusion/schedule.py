"""The Gaussian diffusion process: linear β schedule, respacing and the learned-range posterior.

Follows Improved DDPM / guided-diffusion (the code base of RealNet): the network predicts ε and a
per-pixel v in [-1, 1]; the reverse variance is Σ = exp(f·log β_t + (1−f)·log β̃_t) with f = (v+1)/2.
All coefficients are computed in float64 and stored as float32 tensors indexed by step position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from synth.errors import SynthError

NUM_TRAIN_TIMESTEPS = 1000


def linear_betas(num_timesteps: int = NUM_TRAIN_TIMESTEPS) -> np.ndarray:
    """The linear schedule of DDPM (1e-4 to 0.02 for 1000 steps, scaled for other lengths)."""
    scale = 1000 / num_timesteps
    return np.linspace(scale * 1e-4, scale * 0.02, num_timesteps, dtype=np.float64)


SPACINGS = ("ddim", "even")
DEFAULT_SPACING = "ddim"  # RealNet samples with guided-diffusion's "ddim20": every 50th timestep
DEFAULT_SAMPLING_STEPS = 20  # and 20 steps (ddim20): what `synth gen` samples with


def space_timesteps(num_timesteps: int, steps: int, spacing: str = "even") -> list[int]:
    """``steps`` timesteps out of ``num_timesteps``, by guided-diffusion's two respacings.

    ``even``: evenly strided from 0 to num_timesteps − 1 (its "20"); ``ddim``: every
    (num_timesteps // steps)-th timestep from 0 (its "ddim20": 0, 50, …, 950 for 20 of 1000).
    """
    if not 1 <= steps <= num_timesteps:
        raise SynthError(f"sampling steps must be between 1 and {num_timesteps}, got {steps}")
    if spacing not in SPACINGS:
        raise SynthError(f"unknown spacing {spacing!r}; choose from {', '.join(SPACINGS)}")
    if spacing == "ddim":
        return list(range(0, num_timesteps, num_timesteps // steps))[:steps]
    if steps == 1:
        return [num_timesteps - 1]
    stride = (num_timesteps - 1) / (steps - 1)
    return sorted({round(i * stride) for i in range(steps)})


def _as_tensor(values: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(values.astype(np.float32))


@dataclass(frozen=True)
class Schedule:
    """Coefficients of a (possibly respaced) diffusion; index i is the i-th kept timestep."""

    timesteps: torch.Tensor  # int64, the original timestep the network sees at position i
    betas: torch.Tensor
    alphas_cumprod: torch.Tensor
    sqrt_alphas_cumprod: torch.Tensor
    sqrt_one_minus_alphas_cumprod: torch.Tensor
    sqrt_recip_alphas_cumprod: torch.Tensor
    sqrt_recipm1_alphas_cumprod: torch.Tensor
    posterior_mean_coef1: torch.Tensor  # multiplies x0
    posterior_mean_coef2: torch.Tensor  # multiplies x_t
    posterior_log_variance_clipped: torch.Tensor  # log β̃, with β̃_0 replaced by β̃_1
    log_betas: torch.Tensor

    @classmethod
    def from_alphas_cumprod(cls, alphas_cumprod: np.ndarray, timesteps: list[int]) -> "Schedule":
        """The process that keeps ``timesteps``: β_i = 1 − ᾱ_{t_i}/ᾱ_{t_{i−1}} (ᾱ before t_0 is 1)."""
        kept = alphas_cumprod[timesteps]
        prev = np.append(1.0, kept[:-1])
        betas = 1.0 - kept / prev
        variance = betas * (1.0 - prev) / (1.0 - kept)
        clipped = np.append(variance[1], variance[1:]) if len(variance) > 1 else betas
        return cls(
            timesteps=torch.tensor(timesteps, dtype=torch.long),
            betas=_as_tensor(betas),
            alphas_cumprod=_as_tensor(kept),
            sqrt_alphas_cumprod=_as_tensor(np.sqrt(kept)),
            sqrt_one_minus_alphas_cumprod=_as_tensor(np.sqrt(1.0 - kept)),
            sqrt_recip_alphas_cumprod=_as_tensor(np.sqrt(1.0 / kept)),
            sqrt_recipm1_alphas_cumprod=_as_tensor(np.sqrt(1.0 / kept - 1.0)),
            posterior_mean_coef1=_as_tensor(betas * np.sqrt(prev) / (1.0 - kept)),
            posterior_mean_coef2=_as_tensor((1.0 - prev) * np.sqrt(1.0 - betas) / (1.0 - kept)),
            posterior_log_variance_clipped=_as_tensor(np.log(clipped)),
            log_betas=_as_tensor(np.log(betas)),
        )

    @classmethod
    def linear(cls, num_timesteps: int = NUM_TRAIN_TIMESTEPS, steps: int | None = None,
               spacing: str = "even") -> "Schedule":
        """The linear-β process of ``num_timesteps`` steps, respaced to ``steps`` if given."""
        alphas_cumprod = np.cumprod(1.0 - linear_betas(num_timesteps))
        kept = space_timesteps(num_timesteps, steps, spacing) if steps else list(range(num_timesteps))
        return cls.from_alphas_cumprod(alphas_cumprod, kept)

    def __len__(self) -> int:
        return len(self.timesteps)

    def last_position_at(self, t: int) -> int:
        """The position of the last kept timestep ≤ ``t`` (where a reverse process started at t begins)."""
        kept = torch.nonzero(self.timesteps <= t)
        if not len(kept):
            raise SynthError(f"no kept timestep is at or below {t}")
        return int(kept.max())

    def to(self, device: torch.device | str) -> "Schedule":
        return Schedule(**{name: value.to(device) for name, value in vars(self).items()})


def _at(values: torch.Tensor, index: torch.Tensor | int, ndim: int) -> torch.Tensor:
    """values[index] shaped to broadcast over a batch of ``ndim``-dimensional images."""
    picked = values[index]
    return picked.reshape(picked.shape + (1,) * (ndim - picked.dim()))


def q_sample(schedule: Schedule, x0: torch.Tensor, index: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε."""
    return (_at(schedule.sqrt_alphas_cumprod, index, x0.dim()) * x0
            + _at(schedule.sqrt_one_minus_alphas_cumprod, index, x0.dim()) * noise)


def q_posterior_mean(schedule: Schedule, x0: torch.Tensor, x_t: torch.Tensor,
                     index: torch.Tensor | int) -> torch.Tensor:
    """Mean of q(x_{t−1} | x_t, x0)."""
    return (_at(schedule.posterior_mean_coef1, index, x_t.dim()) * x0
            + _at(schedule.posterior_mean_coef2, index, x_t.dim()) * x_t)


def p_mean_log_variance(schedule: Schedule, model_output: torch.Tensor, x_t: torch.Tensor,
                        index: torch.Tensor | int, clip: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and log-variance of p(x_{t−1} | x_t) from the network output [ε, v] (6 channels).

    The log variance interpolates between log β_t and log β̃_t with f = (v + 1)/2, the learned range
    of Improved DDPM. ``clip`` (sampling, not training) clamps the predicted x0 to [−1, 1] as
    guided-diffusion does, and also v to [−1, 1]. Departure: guided-diffusion leaves v unbounded.
    Trained models do leave the range (v < −1 in 50–73% of the pixels of the tiny models, measured),
    so the clamp matters: it keeps β̃_t ≤ Σ ≤ β_t when sampling, and the (1 + s) widening of SDAS
    then acts on a variance inside the range the model was trained to interpolate.
    """
    eps, v = model_output.float().chunk(2, dim=1)
    ndim = x_t.dim()
    x0 = _at(schedule.sqrt_recip_alphas_cumprod, index, ndim) * x_t - \
        _at(schedule.sqrt_recipm1_alphas_cumprod, index, ndim) * eps
    if clip:
        x0, v = x0.clamp(-1.0, 1.0), v.clamp(-1.0, 1.0)
    frac = (v + 1.0) / 2.0
    log_variance = frac * _at(schedule.log_betas, index, ndim) + \
        (1.0 - frac) * _at(schedule.posterior_log_variance_clipped, index, ndim)
    return q_posterior_mean(schedule, x0, x_t, index), log_variance
