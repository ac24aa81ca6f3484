"""SDAS: ancestral sampling with the learned variance, widened by a per-image strength s.

x'_{t−1} = μθ(x'_t, t) + sqrt(1 + s)·σθ(x'_t, t)·z, z ~ N(0, I), with no noise at the last step
(RealNet, Zhang et al. 2024). s = 0 is ordinary DDPM ancestral sampling. The reverse process starts
from pure noise (``sample``) or from given images noised to a timestep t0 (``edit``, SDEdit).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from diffusers import UNet2DModel

from synth.diffusion.schedule import NUM_TRAIN_TIMESTEPS, Schedule, p_mean_log_variance, q_sample
from synth.errors import SynthError
from synth.pipeline.rng import per_sample_rng


def torch_generator(rng: np.random.Generator) -> torch.Generator:
    """A CPU torch generator seeded from a numpy generator (draws one 63-bit integer from it)."""
    return torch.Generator().manual_seed(int(rng.integers(2 ** 63 - 1)))


def image_generators(seed: int, indices: Sequence[int]) -> list[torch.Generator]:
    """One generator per image, a function of (seed, index) alone."""
    return [torch_generator(per_sample_rng(seed, index)) for index in indices]


def twin_generators(generators: Sequence[torch.Generator]) -> list[torch.Generator]:
    """Copies in the same state: a twin sampled with them draws exactly the same noise."""
    twins = []
    for generator in generators:
        twin = torch.Generator()
        twin.set_state(generator.get_state())
        twins.append(twin)
    return twins


def check_t0(t0: int) -> None:
    """Refuse a start timestep outside the trained process."""
    if not 0 <= t0 < NUM_TRAIN_TIMESTEPS:
        raise SynthError(f"t0 must be between 0 and {NUM_TRAIN_TIMESTEPS - 1}, got {t0}")


def draw_noise(generators: Sequence[torch.Generator], shape: tuple[int, ...],
               device: torch.device) -> torch.Tensor:
    """A batch of standard normal images, image i drawn from generators[i]."""
    return torch.stack([torch.randn(shape, generator=g) for g in generators]).to(device)


def sdas_step(schedule: Schedule, model_output: torch.Tensor, index: int, x_t: torch.Tensor,
              strengths: torch.Tensor, noise: torch.Tensor | None, clip: bool = True) -> torch.Tensor:
    """One reverse step from position ``index``; the only place where the (1 + s) factor lives."""
    mean, log_variance = p_mean_log_variance(schedule, model_output, x_t, index, clip)
    if index == 0 or noise is None:
        return mean
    scale = torch.sqrt(1.0 + strengths.float()).view(-1, 1, 1, 1)
    return mean + scale * torch.exp(0.5 * log_variance) * noise


class SDASSampler:
    """Batched SDAS sampling over ``num_steps`` respaced steps of a trained UNet.

    ``image_size`` (height, width) of the images drawn from noise: the UNet's ``sample_size`` square
    unless given (a fully convolutional, crop-trained model samples at other sizes).
    """

    def __init__(self, unet: UNet2DModel, num_steps: int = 50, bf16: bool = False,
                 num_train_timesteps: int = NUM_TRAIN_TIMESTEPS, clip: bool = True,
                 spacing: str = "even", image_size: tuple[int, int] | None = None) -> None:
        self.unet = unet
        self.device = unet.device
        self.schedule = Schedule.linear(num_train_timesteps, num_steps, spacing).to(self.device)
        self.bf16 = bf16
        self.clip = clip
        side = unet.config.sample_size
        self.image_size = image_size or (side, side)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.unet.config.in_channels, *self.image_size)

    @torch.no_grad()
    def sample(self, batch_size_or_noise: int | torch.Tensor, strengths: torch.Tensor | float,
               generators: Sequence[torch.Generator], class_labels: torch.Tensor | None = None,
               progress: bool = False) -> torch.Tensor:
        """Images in [−1, 1], shape [B, 3, H, W]; image i uses only generators[i] and strengths[i].

        ``batch_size_or_noise`` is a batch size (x_T drawn from the generators) or x_T itself.
        """
        if isinstance(batch_size_or_noise, int):
            x = draw_noise(generators[:batch_size_or_noise], self.image_shape, self.device)
        else:
            x = batch_size_or_noise.to(self.device, torch.float32)
        return self._reverse(x, len(self.schedule) - 1, strengths, generators, class_labels, progress)

    @torch.no_grad()
    def edit(self, images: torch.Tensor, t0: int, strengths: torch.Tensor | float,
             generators: Sequence[torch.Generator], class_labels: torch.Tensor | None = None,
             progress: bool = False) -> torch.Tensor:
        """SDEdit: ``images`` (x0 in [−1, 1]) noised by q(x_t | x0) to the last kept timestep t ≤ t0,
        then the reverse process from there; t0 = 0 returns the images (nothing noised, no step).

        The forward noise of image i is its generator's first draw, then the step noise as ``sample``.
        """
        check_t0(t0)
        x0 = images.to(self.device, torch.float32)
        if t0 == 0:
            return x0.clamp(-1.0, 1.0)
        start = self.schedule.last_position_at(t0)
        x = q_sample(self.schedule, x0, start, draw_noise(generators, tuple(x0.shape[1:]), self.device))
        return self._reverse(x, start, strengths, generators, class_labels, progress)

    def _reverse(self, x: torch.Tensor, start: int, strengths: torch.Tensor | float,
                 generators: Sequence[torch.Generator], class_labels: torch.Tensor | None,
                 progress: bool) -> torch.Tensor:
        """SDAS steps from schedule position ``start`` down to 0."""
        batch = x.shape[0]
        if len(generators) != batch:
            raise SynthError(f"need one generator per image: {len(generators)} for {batch} images")
        strengths = torch.as_tensor(strengths, dtype=torch.float32)
        if strengths.numel() not in (1, batch):
            raise SynthError(f"need one strength per image or one for all: {strengths.numel()} for {batch} images")
        strengths = strengths.reshape(-1).expand(batch).to(self.device)
        if class_labels is not None:
            class_labels = torch.as_tensor(class_labels, dtype=torch.long).expand(batch).to(self.device)
        positions = range(start, -1, -1)
        if progress:
            from tqdm.auto import tqdm

            positions = tqdm(positions, desc="sampling", unit="step")
        for index in positions:
            t = self.schedule.timesteps[index].expand(batch)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                output = self.unet(x, t, class_labels=class_labels).sample
            noise = draw_noise(generators, tuple(x.shape[1:]), self.device) if index > 0 else None
            x = sdas_step(self.schedule, output, index, x, strengths, noise, self.clip)
        return x.clamp(-1.0, 1.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[B, 3, H, W] in [−1, 1] -> [B, H, W, 3] uint8 RGB."""
    scaled = ((images.detach().float().cpu() + 1.0) * 127.5).round().clamp(0, 255)
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).numpy()


def from_uint8(images: np.ndarray) -> torch.Tensor:
    """[B, H, W, 3] uint8 RGB -> [B, 3, H, W] float32 in [−1, 1] (the inverse of ``to_uint8``)."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
