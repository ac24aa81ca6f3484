"""Pictures and text about a trained model: sample grids, the loss curve and the model card."""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from synth.diffusion.model import ModelConfig
from synth.diffusion.presets import get_preset, size_multiple


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"cannot encode {path}")
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data.tobytes())
    os.replace(temporary, path)


def grid(images: np.ndarray, columns: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile [B, H, W, 3] uint8 images into one image with white padding."""
    count, height, width = images.shape[:3]
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    sheet = np.full((rows * (height + pad) + pad, columns * (width + pad) + pad, 3), 255, np.uint8)
    for index, image in enumerate(images):
        top, left = pad + (index // columns) * (height + pad), pad + (index % columns) * (width + pad)
        sheet[top:top + height, left:left + width] = image
    return sheet


def smooth(values: list[float], window: int) -> np.ndarray:
    """Moving average (shorter window at the start)."""
    data = np.asarray(values, dtype=np.float64)
    cumulative = np.cumsum(np.insert(data, 0, 0.0))
    ends = np.arange(1, len(data) + 1)
    starts = np.maximum(0, ends - window)
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)


def loss_curve(losses: list[float], width: int = 640, height: int = 320) -> np.ndarray:
    """The training loss (moving average over 1% of the steps, log scale) as an RGB image."""
    canvas = np.full((height, width, 3), 255, np.uint8)
    margin = 50
    if len(losses) < 2:
        return canvas
    curve = np.log10(np.maximum(smooth(losses, max(1, len(losses) // 100)), 1e-8))
    low, high = float(curve.min()), float(curve.max())
    span = max(high - low, 1e-6)
    xs = margin + np.arange(len(curve)) * (width - 2 * margin) / (len(curve) - 1)
    ys = height - margin - (curve - low) / span * (height - 2 * margin)
    cv2.rectangle(canvas, (margin, margin), (width - margin, height - margin), (180, 180, 180), 1)
    cv2.polylines(canvas, [np.stack([xs, ys], 1).round().astype(np.int32)], False, (200, 60, 30), 1,
                  cv2.LINE_AA)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(canvas, f"{10 ** high:.4g}", (2, margin + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, f"{10 ** low:.4g}", (2, height - margin), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, f"step {len(losses)}", (width - margin - 60, height - margin + 20), font, 0.4,
                (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, "training loss (log scale, moving average)", (margin, margin - 15), font, 0.45,
                (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


LOSS_NOTES = {
    "paper": "RealNet's plain hybrid loss",
    "offset": "hybrid loss with offset noise, so the image-wide mean is learned",
    "mean": "hybrid loss plus an image-mean term",
}


def crops_note(config: ModelConfig) -> str:
    """What a crop-trained model was trained on and the sizes it samples at ("" for a whole-image model)."""
    source = config.crop_source
    if source is None:
        return ""
    multiple = size_multiple(get_preset(config.preset).block_out_channels)
    return (f"trained on {config.size} px crops of images at {source.height}x{source.width}; samples at any "
            f"size whose sides are multiples of {multiple}")


def model_card(config: ModelConfig, command: str, seconds: float, final_loss: float | None,
               source_license: str = "", strength_response: str = "") -> str:
    """README.md of a model directory."""
    preset = get_preset(config.preset)
    kind = "class-conditional" if config.num_classes else "single-category"
    loss = f"{final_loss:.4f}" if final_loss is not None else "n/a"
    note = crops_note(config)
    crops = f"| crops | {note} |\n" if note else ""
    return f"""---
library_name: diffusers
tags: [synth, ddpm, sdas, anomaly-detection]
---

# DDPM for SDAS: {config.category} ({config.preset})

A {kind} denoising diffusion model (diffusers `UNet2DModel`, learned variance, {config.num_train_timesteps}
linear-β steps) trained by `synth train` on the normal images of **{config.category}**; the SDAS
generator of synth samples it with a strength s to make anomalies (RealNet, CVPR 2024).

| | |
|---|---|
| categories (class labels in order) | {", ".join(config.class_names)} |
| preset | {config.preset} ({config.size}x{config.size}, channels {list(preset.block_out_channels)}) |
{crops}| training steps | {config.steps} |
| data | {config.data or "built-in (scikit-image photos)"} |
| licence of the training images | {source_license or "unknown: check the source dataset's licence"} |
| training loss | `{config.loss}` ({LOSS_NOTES.get(config.loss, config.loss)}) |
| training time | {seconds / 60:.1f} min |
| final loss (mean of the last 100 steps) | {loss} |
| weights | EMA (decay min(0.9999, (1+n)/(10+n))) |

Command: `{command}`

Load it with `UNet2DModel.from_pretrained(DIR)` or `synth.diffusion.load_model(DIR)`; the file
`synth_config.json` holds the class names, preset and size.

![training loss](loss.png)

Samples (s = 0) during training are in `samples/`.

The weights are derived from the training images and inherit their licence terms (for MVTec AD:
CC BY-NC-SA 4.0, non-commercial). `synth score DIR --data ROOT --category NAME` reports how real
its samples look (colour error, KID against the real images, per-scale ε slopes).

{strength_response}"""
