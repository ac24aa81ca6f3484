"""DRAEM's ten texture augmentations, as small named ops of (image, rng) with recorded parameters.

DRAEM (Zavrtanik et al., ICCV 2021, ``data_loader.py``) builds them with imgaug and applies 3 drawn
without replacement. Here each op draws its parameters from the caller's numpy Generator (so that
(seed, index) fixes the bytes) and calls albumentations' functional ops or OpenCV directly; every
op returns the new image and a short description such as ``gamma_contrast(0.71,1.32,0.93)``.
Ranges are imgaug's as DRAEM configures them (its defaults where DRAEM gives none).
"""

from __future__ import annotations

from typing import Callable

import albumentations.augmentations.pixel.functional as F
import cv2
import numpy as np

Op = Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, str]]

NUM_OPS = 3
# MultiplyAndAddToBrightness picks one of these colour spaces per image; value = brightness channel
BRIGHTNESS_SPACES: dict[str, tuple[int, int, int]] = {
    "YCrCb": (cv2.COLOR_RGB2YCrCb, cv2.COLOR_YCrCb2RGB, 0),
    "HSV": (cv2.COLOR_RGB2HSV, cv2.COLOR_HSV2RGB, 2),
    "HLS": (cv2.COLOR_RGB2HLS, cv2.COLOR_HLS2RGB, 1),
    "Lab": (cv2.COLOR_RGB2Lab, cv2.COLOR_Lab2RGB, 0),
    "Luv": (cv2.COLOR_RGB2Luv, cv2.COLOR_Luv2RGB, 0),
    "YUV": (cv2.COLOR_RGB2YUV, cv2.COLOR_YUV2RGB, 0),
}
# PIL's ImageFilter.SMOOTH kernel: ImageEnhance.Sharpness blends the image with this blur
PIL_SMOOTH = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13


def rotate(image: np.ndarray, angle: float) -> np.ndarray:
    """Rotate about the centre by ``angle`` degrees (bilinear, black outside), as imgaug's Affine."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2 - 0.5, height / 2 - 0.5), angle, 1.0)
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def gamma_contrast(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """iaa.GammaContrast((0.5, 2.0), per_channel=True): one gamma per channel."""
    gammas = rng.uniform(0.5, 2.0, image.shape[2])
    out = cv2.merge([F.gamma_transform(np.ascontiguousarray(image[..., c]), float(g)) for c, g in enumerate(gammas)])
    return out, "gamma_contrast(" + ",".join(f"{g:.3f}" for g in gammas) + ")"


def to_levels(values: np.ndarray) -> np.ndarray:
    """Values rounded and clipped to the uint8 range (kept as float32 for the next step)."""
    return np.clip(np.floor(values + 0.5), 0, 255)


def brightness(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """iaa.MultiplyAndAddToBrightness(mul=(0.8, 1.2), add=(-30, 30)): in a colour space drawn from
    imgaug's six, scale and shift the brightness channel, in random order."""
    space = list(BRIGHTNESS_SPACES)[int(rng.integers(len(BRIGHTNESS_SPACES)))]
    mul, add = float(rng.uniform(0.8, 1.2)), float(rng.uniform(-30, 30))
    add_first = bool(rng.random() < 0.5)
    forward, backward, channel = BRIGHTNESS_SPACES[space]
    levels = np.arange(256, dtype=np.float32)
    # imgaug's Multiply and Add each return uint8: the brightness is rounded and clipped after each step
    levels = to_levels(to_levels(levels + add) * mul) if add_first else to_levels(to_levels(levels * mul) + add)
    converted = cv2.cvtColor(image, forward)
    converted[..., channel] = cv2.LUT(converted[..., channel], levels.astype(np.uint8))
    order = "add,mul" if add_first else "mul,add"
    return cv2.cvtColor(converted, backward), f"brightness({space},{mul:.3f},{add:.1f},{order})"


def sharpness(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """iaa.pillike.EnhanceSharpness() (factor U(0, 2)): PIL's blend of the image with its SMOOTH blur."""
    factor = float(rng.uniform(0.0, 2.0))
    smooth = cv2.filter2D(image, -1, PIL_SMOOTH, borderType=cv2.BORDER_REPLICATE)
    smooth[0], smooth[-1], smooth[:, 0], smooth[:, -1] = image[0], image[-1], image[:, 0], image[:, -1]
    return cv2.addWeighted(image, factor, smooth, 1 - factor, 0), f"sharpness({factor:.3f})"


def hue_saturation(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """iaa.AddToHueAndSaturation((-50, 50), per_channel=True): independent integer shifts of hue (on
    imgaug's 0-255 hue scale, i.e. x 180/255 in OpenCV units) and saturation. Departure:
    albumentations keeps fully grey pixels (saturation 0) grey, imgaug does not."""
    hue, saturation = (int(v) for v in rng.integers(-50, 51, 2))
    out = F.shift_hsv(image, hue_shift=hue * 180 / 255, sat_shift=saturation, val_shift=0)
    return out, f"hue_saturation({hue},{saturation})"


def solarize(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """iaa.Solarize(0.5, threshold=(32, 128)): with probability 0.5, invert values >= threshold."""
    if rng.random() >= 0.5:
        return image, "solarize(skipped)"
    threshold = float(rng.uniform(32, 128))
    return F.solarize(image, threshold / 255), f"solarize({threshold:.1f})"


def posterize(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """iaa.Posterize() (nb_bits 1..8): keep the highest ``bits`` bits of every value."""
    bits = int(rng.integers(1, 9))
    return (F.posterize(image, bits) if bits < 8 else image), f"posterize({bits})"


def invert(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """iaa.Invert(): 255 - x (imgaug's default probability 1)."""
    return F.invert(image), "invert"


def autocontrast(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """iaa.pillike.Autocontrast() (cutoff 0..20 %): PIL's per-band histogram stretch."""
    cutoff = int(rng.integers(0, 21))
    return F.auto_contrast(image, cutoff, None, "pil"), f"autocontrast({cutoff})"


def equalize(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """iaa.pillike.Equalize(): PIL's per-band histogram equalisation."""
    return F.equalize(image, mode="pil", by_channels=True), "equalize"


def affine_rotate(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """iaa.Affine(rotate=(-45, 45)): rotation about the centre, black corners."""
    angle = float(rng.uniform(-45, 45))
    return rotate(image, angle), f"rotate({angle:.2f})"


DRAEM_OPS: tuple[Op, ...] = (gamma_contrast, brightness, sharpness, hue_saturation, solarize, posterize,
                             invert, autocontrast, equalize, affine_rotate)


def random_augment(image: np.ndarray, rng: np.random.Generator, count: int = NUM_OPS,
                   ops: tuple[Op, ...] = DRAEM_OPS) -> tuple[np.ndarray, str]:
    """Apply ``count`` ops drawn without replacement, in the drawn order (as DRAEM's Sequential);
    return the image and the ops applied, e.g. ``invert;posterize(3);rotate(-12.50)``."""
    chosen = rng.choice(len(ops), size=count, replace=False) if count else []
    applied = []
    for index in chosen:
        image, description = ops[int(index)](image, rng)
        applied.append(description)
    return image, ";".join(applied)
