"""SDAS (RealNet, CVPR 2024): strength-controllable diffusion anomaly synthesis.

Each image is sampled from the category's DDPM with the reverse variance widened by (1 + s)
(``synth.diffusion.sampler``). Raw mode writes the sampled images P as they are (RealNet's SIA set);
``blend`` composites them into a normal image I through a Perlin ∩ foreground mask M:
A = (1 − M)·I + M·(δ·P + (1 − δ)·I), δ ~ U[0.5, 1].

The DDPM samples squares of its preset size. Each side of ``--size`` must be that size times 1, 2 or 4;
P is resized to the image's height and width (``upscaled`` in the row). A non-square size stretches P,
which only ``blend`` accepts (a raw sample would be a distorted image of the category). A model trained
on crops (``synth train --crops-from``) is fully convolutional and samples P at ``--size`` itself (each
side a multiple of its UNet's downsampling factor), with no resizing, raw or blended, square or not.

``contrast`` (``--contrast LO:HI``, instead of ``--s``) asks for anomalies by visibility: each image
draws a target change c ~ U[LO, HI] in grey levels and is sampled at the s where the model's measured
strength response reaches c (``synth.quality.response``); its row records s and ``target_contrast``.

Variants (off by default): ``t0`` starts the reverse process from the normal image noised to t0
(SDEdit), so P is the same part with anomalies; ``mask = aligned`` takes M from where P differs from
its s = 0 twin (``synth.masks.aligned``), ``both`` from Perlin ∩ that difference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import torch

from synth.data.size import ImageSize
from synth.diffusion.model import load_model
from synth.diffusion.models import find_model
from synth.diffusion.precision import fast_bf16, precision_name
from synth.diffusion.presets import size_multiple
from synth.diffusion.sampler import SDASSampler, check_t0, from_uint8, to_uint8, torch_generator, twin_generators
from synth.diffusion.schedule import DEFAULT_SAMPLING_STEPS, DEFAULT_SPACING
from synth.errors import SynthError
from synth.generators.base import Generator, GeneratorSettings, Sample, register
from synth.masks import aligned_mask, anomaly_mask, default_rule, foreground_mask
from synth.masks.aligned import DEFAULT_THRESHOLD
from synth.pipeline import distributed
from synth.pipeline.provenance import model_provenance
from synth.pipeline.strength import parse_contrast, parse_range

DEFAULT_STRENGTH = (0.1, 0.2)  # RealNet's SIA: s ~ U[0.1, 0.2]
DEFAULT_DELTA = (0.5, 1.0)
MAX_UPSCALE = 4
MASK_SOURCES = ("perlin", "aligned", "both")
VARIANT_COLUMNS = {"t0": "int64", "mask_source": "string", "mask_threshold": "float64"}
CROP_COLUMNS = {"sample_size": "string"}  # a crop-trained model's sampled size (the output size)
CONTRAST_COLUMNS = {"target_contrast": "float64"}


@register
class SDAS(Generator):
    name = "sdas"
    columns: ClassVar[dict[str, str]] = {
        "s": "float64", "steps": "int64", "model": "string", "model_sha256": "string", "model_size": "int64",
        "upscaled": "bool",
        "blended": "bool", "delta": "float64",
    }

    def __init__(self, model_dir: str, category: str, size: ImageSize | int, strength: tuple[float, float] = DEFAULT_STRENGTH,
                 steps: int = DEFAULT_SAMPLING_STEPS, blend: bool = False, delta: tuple[float, float] = DEFAULT_DELTA,
                 foreground: str | None = None, s_per_batch: bool = False, bf16: bool | None = None,
                 spacing: str = DEFAULT_SPACING, t0: int | None = None, mask_source: str | None = None,
                 mask_threshold: float = DEFAULT_THRESHOLD, contrast: tuple[float, float] | None = None) -> None:
        device = distributed.device()
        self.unet, self.config = load_model(model_dir, device)
        provenance = model_provenance(model_dir)
        self.model_id, self.model_sha256 = provenance["id"], provenance["sha256"]
        self.model_size = self.config.size
        size = ImageSize.coerce(size)
        self.sample_size = self._sample_size(size, blend)
        if self.config.num_classes and category not in self.config.class_names:
            raise SynthError(f"model {model_dir} was not trained on category {category!r}")
        self.class_label = self.config.class_names.index(category) if self.config.num_classes else None
        self.size, self.strength, self.steps, self.blend = size, strength, steps, blend
        self.delta, self.s_per_batch = delta, s_per_batch
        self.foreground = foreground or default_rule(category)
        self.bf16 = fast_bf16(device) if bf16 is None else bf16
        self.spacing = spacing
        self.sampler = SDASSampler(self.unet, steps, bf16=self.bf16, spacing=spacing, image_size=self.sample_size.shape)
        if t0 is not None:
            check_t0(t0)
        if mask_source not in (None, "perlin") and not blend:
            raise SynthError(f"option mask={mask_source} needs --blend")
        if mask_threshold < 0:
            raise SynthError(f"option mask_threshold must be at least 0, got {mask_threshold}")
        self.t0, self.mask_threshold = t0, mask_threshold
        self.mask_source = mask_source or "perlin"
        # variants are recorded only when asked for: default rows and manifests keep their schema and bytes
        self.has_variant = t0 is not None or mask_source is not None
        if self.has_variant:
            self.columns = {**SDAS.columns, **VARIANT_COLUMNS}
        if self.config.crops_from:  # recorded only for such a model: other datasets keep their schema and bytes
            self.columns = {**self.columns, **CROP_COLUMNS}
        self.contrast, self.response = contrast, None
        if contrast is not None:
            self._use_contrast(model_dir, category, contrast)

    def _sample_size(self, size: ImageSize, blend: bool) -> ImageSize:
        """The size the UNet samples at: ``size`` for a crop-trained model, else the model's square (checked
        to be resizable to ``size``)."""
        if self.config.crops_from:
            multiple = size_multiple(self.unet.config.block_out_channels)
            if any(side % multiple for side in size.shape):
                raise SynthError(f"model {self.model_id} (trained on {self.model_size} px crops) samples at sizes "
                                 f"whose sides are multiples of {multiple}; --size {size} is not (e.g. --size "
                                 f"{max(multiple, size.height // multiple * multiple)})")
            return size
        ratios = [side / self.model_size for side in size.shape]
        if any(side < self.model_size or ratio != int(ratio) or ratio > MAX_UPSCALE
               for side, ratio in zip(size.shape, ratios)):
            raise SynthError(f"the model makes {self.model_size}x{self.model_size} images; each side of --size {size} "
                             f"must be it times 1, 2 or 4 (e.g. --size {self.model_size})")
        if not size.is_square and not blend:
            raise SynthError(f"raw SDAS images are the model's {self.model_size}x{self.model_size} squares; "
                             f"a non-square --size {size} needs --blend (P is then resized to {size.height}x{size.width})")
        return ImageSize.square(self.model_size)

    def _use_contrast(self, model_dir: str, category: str, contrast: tuple[float, float]) -> None:
        """Load (or measure) the model's strength response; the s range the contrast range maps to."""
        from synth.quality.response import model_response

        if self.t0 is not None:
            raise SynthError("--contrast reads the response of samples from noise; it does not combine with t0")
        self.response = model_response(Path(model_dir), self.unet, self.config, category, self.steps, self.spacing,
                                       self.bf16)
        reach = float(self.response.reach[-1])
        if contrast[1] > reach:
            raise SynthError(f"--contrast up to {contrast[1]:g} asks for more than model {self.model_id} "
                             f"reaches: its samples change by at most {reach:.1f} grey levels (at s = "
                             f"{self.response.strengths[-1]:g})")
        self.strength = tuple(self.response.strength_for(c) for c in contrast)
        self.columns = {**self.columns, **CONTRAST_COLUMNS}

    @classmethod
    def from_settings(cls, settings: GeneratorSettings) -> "SDAS":
        extra = settings.extra
        model_dir = find_model(settings.category, extra.get("model"), extra.get("models"))
        try:
            steps = int(extra.get("steps", DEFAULT_SAMPLING_STEPS))
        except ValueError:
            raise SynthError(f"--steps must be an integer, got {extra.get('steps')!r}") from None
        if steps < 1:
            raise SynthError(f"--steps must be at least 1, got {steps}")
        # its own key: `contrast` is the strokes generator's option, which a mix hands the same settings
        contrast = parse_contrast(extra["target_contrast"]) if "target_contrast" in extra else None
        if contrast is not None and settings.strength is not None:
            raise SynthError("--s and --contrast exclude each other: give one")
        if "delta" in extra and not settings.flag("blend"):
            raise SynthError("--delta is the opacity of the blend; it needs --blend")
        return cls(str(model_dir), settings.category, settings.size, settings.strength or DEFAULT_STRENGTH,
                   steps, settings.flag("blend"), parse_range(extra.get("delta", "0.5:1.0"), "--delta", upper=1),
                   settings.foreground, settings.flag("s_per_batch"),
                   settings.flag("bf16") if "bf16" in extra else None,
                   str(extra.get("spacing", DEFAULT_SPACING)), _number(extra, "t0", int),
                   settings.choice("mask", "perlin", MASK_SOURCES) if "mask" in extra else None,
                   _number(extra, "mask_threshold", float, DEFAULT_THRESHOLD), contrast)

    @property
    def uses_normal_image(self) -> bool:
        return self.blend or self.t0 is not None

    @property
    def runs_twin(self) -> bool:
        """Whether each image is sampled with its s = 0 twin (twice the sampling cost)."""
        return self.mask_source != "perlin"

    def describe(self) -> dict[str, Any]:
        variant = {"t0": self.t0, "mask": self.mask_source if self.blend else None,
                   "mask_threshold": self.mask_threshold if self.runs_twin else None} if self.has_variant else {}
        return {"model": self.model_id, "model_sha256": self.model_sha256, "model_preset": self.config.preset,
                "model_size": self.model_size, "model_steps": self.config.steps, "model_loss": self.config.loss,
                **({"model_crops_from": self.config.crops_from, "sample_size": str(self.sample_size)}
                   if self.config.crops_from else {}),
                "precision": precision_name(self.bf16), "strength": list(self.strength),
                "sampling_steps": self.steps, "spacing": self.spacing,
                "blend": self.blend, "delta": list(self.delta) if self.blend else None,
                "foreground": self.foreground if self.blend else None, "s_per_batch": self.s_per_batch,
                **variant, **self._contrast_record()}

    def _contrast_record(self) -> dict[str, Any]:
        """The contrast range and the response it was mapped through (nothing without --contrast)."""
        if self.response is None:
            return {}
        return {"contrast": list(self.contrast), "strength_response": self.response.record()}

    def generate(self, normal: np.ndarray, rng: np.random.Generator) -> Sample:
        return self.generate_batch([normal], [rng])[0]

    def generate_batch(self, normals: list[np.ndarray], rngs: list[np.random.Generator]) -> list[Sample]:
        """Sample P for the whole batch on the device; each image's s (or target contrast) and noise come
        from its own rng."""
        draws = [float(rng.uniform(*(self.contrast or self.strength))) for rng in rngs]
        if self.s_per_batch:  # the official code's behaviour: the batch's first s for every image
            draws = [draws[0]] * len(rngs)
        strengths = [self.response.strength_for(c) for c in draws] if self.response is not None else draws
        generators = [torch_generator(rng) for rng in rngs]
        images, twins = self._sample(normals, strengths, generators)
        samples = []
        for normal, rng, image, twin, s, draw in zip(normals, rngs, images, twins, strengths, draws):
            params = {"s": s, "steps": self.steps, "model": self.model_id, "model_sha256": self.model_sha256,
                      "model_size": self.model_size,
                      "upscaled": self.size != self.sample_size, "blended": self.blend}
            if self.config.crops_from:
                params["sample_size"] = str(self.sample_size)
            if self.has_variant:
                params.update(t0=self.t0, mask_source=self.mask_source,
                              mask_threshold=self.mask_threshold if self.runs_twin else None)
            if self.response is not None:
                params["target_contrast"] = draw
            if self.blend:
                samples.append(self._blend(normal, image, twin, rng, params))
            else:
                samples.append(Sample(image, None, params))
        return samples

    def _sample(self, normals: list[np.ndarray], strengths: list[float],
                generators: list[torch.Generator]) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
        """P at the output size for each image, and its s = 0 twin (None unless an aligned mask needs it).

        The twins run in the same batch as the samples, from copies of their generators.
        """
        count = len(generators)
        if self.runs_twin:
            generators, strengths = generators + twin_generators(generators), strengths + [0.0] * count
            normals = normals + normals
        labels = None if self.class_label is None else torch.full((len(generators),), self.class_label)
        if self.t0 is None:
            made = self.sampler.sample(len(generators), torch.tensor(strengths), generators, labels)
        else:
            side = self.sample_size.dsize
            start = from_uint8(np.stack([cv2.resize(n, side, interpolation=cv2.INTER_AREA) for n in normals]))
            made = self.sampler.edit(start, self.t0, torch.tensor(strengths), generators, labels)
        images = [self._upscale(image) for image in to_uint8(made)]
        return images[:count], images[count:] if self.runs_twin else [None] * count

    def _upscale(self, image: np.ndarray) -> np.ndarray:
        if self.size == self.sample_size:
            return image
        return cv2.resize(image, self.size.dsize, interpolation=cv2.INTER_CUBIC)

    def _blend(self, normal: np.ndarray, image: np.ndarray, twin: np.ndarray | None, rng: np.random.Generator,
               params: dict[str, Any]) -> Sample:
        foreground = foreground_mask(normal, self.foreground)
        if self.mask_source == "aligned":
            mask = aligned_mask(image, twin, self.mask_threshold, self._kernel(), foreground)
        else:
            mask = anomaly_mask(foreground, rng)
            if self.mask_source == "both":
                mask = aligned_mask(image, twin, self.mask_threshold, self._kernel(), mask)
        delta = float(rng.uniform(*self.delta))
        inside = (mask > 0)[..., None]
        mixed = delta * image.astype(np.float32) + (1 - delta) * normal.astype(np.float32)
        blended = np.where(inside, np.clip(np.rint(mixed), 0, 255).astype(np.uint8), normal)
        if self.runs_twin:  # the label is exactly the pixels the blend changed
            mask = np.where((blended != normal).any(axis=2), mask, 0).astype(np.uint8)
        return Sample(blended, mask, {**params, "delta": delta})

    def _kernel(self) -> int:
        """The cleaning ellipse's side: 2r + 1 output pixels at upscale ratio r (3, 5, 9 at 1x, 2x, 4x; 3 for a
        crop-trained model, which samples at the output size)."""
        ratio = min(side // sampled for side, sampled in zip(self.size.shape, self.sample_size.shape))
        return 2 * ratio + 1


def _number(extra: dict[str, Any], key: str, kind: type, default: Any = None) -> Any:
    """An optional numeric ``-o KEY=VALUE`` option, ``default`` when absent."""
    if key not in extra:
        return default
    try:
        return kind(extra[key])
    except ValueError:
        raise SynthError(f"option {key} must be a number ({kind.__name__}), got {extra[key]!r}") from None
