"""SDAS (RealNet, CVPR 2024): strength-controllable diffusion anomaly synthesis.

Each image is sampled from the category's DDPM with the reverse variance widened by (1 + s)
(``synth.diffusion.sampler``). Raw mode writes the sampled images P as they are (RealNet's SIA set);
``blend`` composites them into a normal image I through a Perlin ∩ foreground mask M:
A = (1 − M)·I + M·(δ·P + (1 − δ)·I), δ ~ U[0.5, 1].

The DDPM samples squares of its preset size. Each side of ``--size`` must be that size times 1, 2 or 4;
P is resized to the image's height and width (``upscaled`` in the row). A non-square size stretches P,
which only ``blend`` accepts (a raw sample would be a distorted image of the category).
"""

from __future__ import annotations

from typing import Any, ClassVar

import cv2
import numpy as np
import torch

from synth import distributed
from synth.diffusion.model import load_model
from synth.diffusion.models import find_model
from synth.diffusion.precision import fast_bf16, precision_name
from synth.diffusion.sampler import SDASSampler, to_uint8, torch_generator
from synth.diffusion.schedule import DEFAULT_SPACING
from synth.data.size import ImageSize
from synth.errors import SynthError
from synth.generators.base import Generator, GeneratorSettings, Sample, register
from synth.masks import anomaly_mask, default_rule, foreground_mask
from synth.provenance import model_provenance
from synth.strength import parse_range

DEFAULT_STRENGTH = (0.1, 0.2)  # RealNet's SIA: s ~ U[0.1, 0.2]
DEFAULT_STEPS = 20  # RealNet samples 20 steps, every 50th timestep (guided-diffusion's "ddim20")
DEFAULT_DELTA = (0.5, 1.0)
MAX_UPSCALE = 4


@register
class SDAS(Generator):
    name = "sdas"
    columns: ClassVar[dict[str, str]] = {
        "s": "float64", "steps": "int64", "model": "string", "model_sha256": "string", "model_size": "int64",
        "upscaled": "bool",
        "blended": "bool", "delta": "float64",
    }

    def __init__(self, model_dir: str, category: str, size: ImageSize, strength: tuple[float, float] = DEFAULT_STRENGTH,
                 steps: int = DEFAULT_STEPS, blend: bool = False, delta: tuple[float, float] = DEFAULT_DELTA,
                 foreground: str | None = None, s_per_batch: bool = False, bf16: bool | None = None,
                 spacing: str = DEFAULT_SPACING) -> None:
        device = distributed.device()
        self.unet, self.config = load_model(model_dir, device)
        provenance = model_provenance(model_dir)
        self.model_id, self.model_sha256 = provenance["id"], provenance["sha256"]
        self.model_size = self.config.size
        ratios = [side / self.model_size for side in size.shape]
        if any(side < self.model_size or ratio != int(ratio) or ratio > MAX_UPSCALE
               for side, ratio in zip(size.shape, ratios)):
            raise SynthError(f"the model makes {self.model_size}x{self.model_size} images; each side of --size {size} "
                             f"must be it times 1, 2 or 4 (e.g. --size {self.model_size})")
        if not size.is_square and not blend:
            raise SynthError(f"raw SDAS images are the model's {self.model_size}x{self.model_size} squares; "
                             f"a non-square --size {size} needs --blend (P is then resized to {size.height}x{size.width})")
        if self.config.num_classes and category not in self.config.class_names:
            raise SynthError(f"model {model_dir} was not trained on category {category!r}")
        self.class_label = self.config.class_names.index(category) if self.config.num_classes else None
        self.size, self.strength, self.steps, self.blend = size, strength, steps, blend
        self.delta, self.s_per_batch = delta, s_per_batch
        self.foreground = foreground or default_rule(category)
        self.bf16 = fast_bf16(device) if bf16 is None else bf16
        self.spacing = spacing
        self.sampler = SDASSampler(self.unet, steps, bf16=self.bf16, spacing=spacing)

    @classmethod
    def from_settings(cls, settings: GeneratorSettings) -> "SDAS":
        extra = settings.extra
        model_dir = find_model(settings.category, extra.get("model"), extra.get("models"))
        try:
            steps = int(extra.get("steps", DEFAULT_STEPS))
        except ValueError:
            raise SynthError(f"--steps must be an integer, got {extra.get('steps')!r}") from None
        if steps < 1:
            raise SynthError(f"--steps must be at least 1, got {steps}")
        return cls(str(model_dir), settings.category, settings.size, settings.strength or DEFAULT_STRENGTH,
                   steps, settings.flag("blend"), parse_range(extra.get("delta", "0.5:1.0"), "--delta", upper=1),
                   settings.foreground, settings.flag("s_per_batch"),
                   settings.flag("bf16") if "bf16" in extra else None,
                   str(extra.get("spacing", DEFAULT_SPACING)))

    @property
    def uses_normal_image(self) -> bool:
        return self.blend

    def describe(self) -> dict[str, Any]:
        return {"model": self.model_id, "model_sha256": self.model_sha256, "model_preset": self.config.preset,
                "model_size": self.model_size, "model_steps": self.config.steps, "model_loss": self.config.loss,
                "precision": precision_name(self.bf16), "strength": list(self.strength),
                "sampling_steps": self.steps, "spacing": self.spacing,
                "blend": self.blend, "delta": list(self.delta) if self.blend else None,
                "foreground": self.foreground if self.blend else None, "s_per_batch": self.s_per_batch}

    def generate(self, normal: np.ndarray, rng: np.random.Generator) -> Sample:
        return self.generate_batch([normal], [rng])[0]

    def generate_batch(self, normals: list[np.ndarray], rngs: list[np.random.Generator]) -> list[Sample]:
        """Sample P for the whole batch on the device; each image's s and noise come from its own rng."""
        strengths = [float(rng.uniform(*self.strength)) for rng in rngs]
        if self.s_per_batch:  # the official code's behaviour: the batch's first s for every image
            strengths = [strengths[0]] * len(rngs)
        generators = [torch_generator(rng) for rng in rngs]
        labels = None if self.class_label is None else torch.full((len(rngs),), self.class_label)
        images = to_uint8(self.sampler.sample(len(rngs), torch.tensor(strengths), generators, labels))
        samples = []
        for normal, rng, image, s in zip(normals, rngs, images, strengths):
            upscaled = self.size != ImageSize.square(self.model_size)
            if upscaled:
                image = cv2.resize(image, self.size.dsize, interpolation=cv2.INTER_CUBIC)
            params = {"s": s, "steps": self.steps, "model": self.model_id, "model_sha256": self.model_sha256,
                      "model_size": self.model_size, "upscaled": upscaled, "blended": self.blend}
            if self.blend:
                samples.append(self._blend(normal, image, rng, params))
            else:
                samples.append(Sample(image, None, params))
        return samples

    def _blend(self, normal: np.ndarray, image: np.ndarray, rng: np.random.Generator,
               params: dict[str, Any]) -> Sample:
        mask = anomaly_mask(foreground_mask(normal, self.foreground), rng)
        delta = float(rng.uniform(*self.delta))
        inside = (mask > 0)[..., None]
        mixed = delta * image.astype(np.float32) + (1 - delta) * normal.astype(np.float32)
        blended = np.where(inside, np.clip(np.rint(mixed), 0, 255).astype(np.uint8), normal)
        return Sample(blended, mask, {**params, "delta": delta})
