"""Strength response of an SDAS model: how much s changes its samples, and the s that gives a wanted change.

The response at s is the mean over images of the mean absolute RGB change (grey levels) of the
model's samples at s from their s = 0 twins (the same noise), over the whole image. The mean, not
the median of `synth score`: some models' changes are bimodal (at s = 0.1 half of the metal_plate
samples change by about 4 grey levels, a quarter by 12 to 20 or more), and a median over a few
dozen images jumps between the modes. It is measured on the model's own samples with a fixed seed,
no real image and no defect, at `synth gen`'s sampler settings, and stored next to the weights in
``strength_response.json`` (by `synth train`). ``strength_for`` inverts its running maximum by linear
interpolation: `synth gen --contrast C` takes the smallest s whose samples change by C grey levels.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from synth.diffusion.model import ModelConfig, load_model
from synth.diffusion.precision import fast_bf16, precision_name
from synth.errors import SynthError
from synth.pipeline.provenance import model_provenance
from synth.pipeline.strength import MAX_STRENGTH
from synth.quality.contrast import pixel_change

log = logging.getLogger("synth")

RESPONSE_NAME = "strength_response.json"
RESPONSE_FORMAT = 1
GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0, MAX_STRENGTH)
COUNT = 32  # images per strength: 2-3.5 min for a bundled model on one CPU thread in bf16
SEED = 0


@dataclass(frozen=True)
class Measurement:
    """How a response was measured: the sampler settings and the images it was measured on."""

    steps: int
    spacing: str
    precision: str
    count: int
    seed: int


@dataclass(frozen=True)
class StrengthResponse:
    """The mean change (grey levels) of a model's samples at each strength of ``strengths``."""

    strengths: tuple[float, ...]
    change: tuple[float, ...]
    measurement: Measurement

    @property
    def reach(self) -> np.ndarray:
        """The running maximum of ``change``: non-decreasing, what the inversion reads."""
        return np.maximum.accumulate(np.asarray(self.change, dtype=float))

    def strength_for(self, contrast: float) -> float:
        """The smallest s whose (interpolated) response reaches ``contrast`` grey levels."""
        reach, strengths = self.reach, np.asarray(self.strengths, dtype=float)
        if contrast > reach[-1]:
            raise SynthError(f"a change of {contrast:g} grey levels is beyond the model's reach "
                             f"({reach[-1]:.1f} at s = {strengths[-1]:g})")
        above = int(np.clip(np.searchsorted(reach, contrast, side="left"), 1, len(reach) - 1))
        low, high = reach[above - 1], reach[above]
        share = (contrast - low) / (high - low) if high > low else 0.0  # equal only for contrast = reach[0]
        return float(strengths[above - 1] + share * (strengths[above] - strengths[above - 1]))

    def record(self) -> dict[str, Any]:
        """For a manifest: the strengths, the change at each and how it was measured."""
        return {"s": list(self.strengths), "change": [round(c, 3) for c in self.change], **asdict(self.measurement)}


def measure_response(unet: torch.nn.Module, config: ModelConfig, category: str, measurement: Measurement,
                     bf16: bool, grid: tuple[float, ...], progress: bool = True) -> StrengthResponse:
    """The response of ``category``'s samples at each s of ``grid`` (which starts at 0)."""
    from synth.quality.score import sample_model

    def sample(strength: float) -> np.ndarray:
        return sample_model(unet, config, category, strength, measurement.count, measurement.steps,
                            measurement.spacing, bf16, measurement.seed)

    reference = sample(0.0)
    change = [0.0] + [float(np.mean([pixel_change(image, twin).mean() for image, twin in zip(sample(s), reference)]))
                      for s in tqdm(grid[1:], desc=f"strength response {category}", unit="s", disable=not progress)]
    return StrengthResponse(tuple(grid), tuple(change), measurement)


def save_responses(directory: Path, steps: int, spacing: str, device: torch.device | str = "cpu",
                   progress: bool = True) -> dict[str, StrengthResponse]:
    """Measure the response of each category of the model in ``directory`` and write it there."""
    directory = Path(directory)
    unet, config = load_model(directory, device)
    bf16 = fast_bf16(unet.device)
    measurement = Measurement(steps, spacing, precision_name(bf16), COUNT, SEED)
    responses = {name: measure_response(unet, config, name, measurement, bf16, GRID, progress)
                 for name in config.class_names}
    (directory / RESPONSE_NAME).write_text(json.dumps({
        "format": RESPONSE_FORMAT, "model_sha256": model_provenance(directory)["sha256"], **asdict(measurement),
        "statistic": "mean over images of the mean absolute RGB change from the s = 0 sample of the same noise, "
                     "whole image, grey levels",
        "s": list(GRID), "change": {name: [round(c, 3) for c in r.change] for name, r in responses.items()},
    }, indent=2) + "\n")
    return responses


def response_markdown(responses: dict[str, StrengthResponse]) -> str:
    """A model card section: the change at each s, one column per category, and how it was measured."""
    names = list(responses)
    first = responses[names[0]]
    measured = first.measurement
    rows = [f"| {s:g} | " + " | ".join(f"{responses[n].change[i]:.1f}" for n in names) + " |"
            for i, s in enumerate(first.strengths)]
    return "\n".join([
        "## Strength response", "",
        f"Mean change (grey levels) of {measured.count} samples at strength s from their s = 0 twins (the same "
        f"noise), whole image; {measured.steps} {measured.spacing} steps, {measured.precision}, seed {measured.seed}. "
        f"`synth gen --contrast LO:HI` maps wanted changes to s through it ({RESPONSE_NAME}).", "",
        "| s | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|", *rows, ""])


def stored_response(directory: Path, category: str, steps: int, spacing: str) -> StrengthResponse | None:
    """The response stored with the model, if it was measured on these weights at these sampler settings."""
    path = Path(directory) / RESPONSE_NAME
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
        fits = (stored["format"] == RESPONSE_FORMAT and stored["model_sha256"] == model_provenance(directory)["sha256"]
                and (stored["steps"], stored["spacing"]) == (steps, spacing) and category in stored["change"])
        if not fits:
            return None
        measurement = Measurement(*(stored[key] for key in ("steps", "spacing", "precision", "count", "seed")))
        strengths, change = tuple(stored["s"]), tuple(stored["change"][category])
        if len(strengths) != len(change) or strengths[0] != 0:
            raise ValueError("s must start at 0 and have one change per s")
        return StrengthResponse(strengths, change, measurement)
    except (ValueError, KeyError, TypeError) as error:
        raise SynthError(f"{path} is not a valid strength response ({error})") from None


_MEASURED: dict[tuple[Any, ...], StrengthResponse] = {}


def model_response(directory: Path, unet: torch.nn.Module, config: ModelConfig, category: str, steps: int,
                   spacing: str, bf16: bool) -> StrengthResponse:
    """The stored response, else one measured now (once per process and model) with one log line."""
    response = stored_response(directory, category, steps, spacing)
    if response is not None:
        return response
    key = (model_provenance(directory)["sha256"], category, steps, spacing, bf16)
    if key not in _MEASURED:
        log.warning("model %s has no stored strength response for %s at %d %s steps: measuring it now "
                    "(%d images at %d strengths)", Path(directory).name, category, steps, spacing, COUNT, len(GRID))
        measurement = Measurement(steps, spacing, precision_name(bf16), COUNT, SEED)
        _MEASURED[key] = measure_response(unet, config, category, measurement, bf16, GRID)
    return _MEASURED[key]
