"""NSA, Natural Synthetic Anomalies (Schlüter et al., ECCV 2022): patches of another normal image of
the category, rescaled and Poisson-blended (seamless cloning) into the target at another place.

Follows the reference code (``self_sup_data/self_sup_tasks.py: patch_ex`` with the "Shift" setting
of ``train_mvtec.py``): up to ``num_patches`` patches (the first always, each further one with
probability 1/2); half-widths (0.03 + Gamma(2, 0.05)) x side, clipped to NSA's per-class bounds;
source centre uniform; scale N(1, 0.5) clipped to the resize bounds (the pasted side clipped to the
half-width bounds, as the reference does); destination centre uniform; ``cv2.NORMAL_CLONE``. The
mask is the reference's binary label: mean absolute change over the channels > 1 grey level,
median-filtered (5 x 5), inside the pasted patches.

Departures (docs/generators/nsa.md): the donor is drawn uniformly from the category (the reference
takes the previously loaded training image); the foreground is a ``--foreground`` rule (default:
none for textures and unknown categories, RealNet's rule for MVTec AD objects) instead of NSA's
background-colour threshold; a sample whose mask comes out empty is redrawn; ``-o strength=K``
scales the blended change (K = 1, the default, is NSA).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import cv2
import numpy as np

from synth.data import load_category
from synth.errors import SynthError
from synth.generators.base import Generator, GeneratorSettings, Sample, register
from synth.generators.blending import CLONE_MODES, changed_mask, poisson_paste
from synth.masks import check_rule, default_rule, foreground_mask

HALF_WIDTH_GAMMA = (2.0, 0.05, 0.03)  # shape, scale, offset: half-width = (offset + Gamma) x side
LABEL_TOLERANCE = 1.0  # grey levels of mean absolute change for a pixel to count as changed
LABEL_MEDIAN = 5
MIN_OBJECT, MIN_OVERLAP = 0.25, 0.25  # patch_ex defaults: foreground share of a patch, overlap with the target's
PLACEMENT_TRIES = 200  # as the reference
SAMPLE_TRIES = 100  # a tiny image (32 px) needs many: most of its patches are under MIN_CLONE_PIXELS


@dataclass(frozen=True)
class NsaConfig:
    """NSA's per-class settings: half-width bounds as fractions of (height, width), resize bounds,
    patches; textures' values are the default for any category NSA does not list."""

    width_bounds: tuple[tuple[float, float], tuple[float, float]] = ((0.03, 0.4), (0.03, 0.4))
    resize_bounds: tuple[float, float] = (0.5, 2.0)
    num_patches: int = 4
    min_object: float = MIN_OBJECT


OBJECT_RESIZE = (0.7, 1.3)
WIDE = ((0.03, 0.4), (0.03, 0.4))
# train_mvtec.py: WIDTH_BOUNDS_PCT, NUM_PATCHES, MIN_OBJECT_PCT for its MVTec AD objects
NSA_OBJECTS: dict[str, NsaConfig] = {
    "bottle": NsaConfig(WIDE, OBJECT_RESIZE, 3, 0.7),
    "cable": NsaConfig(((0.05, 0.4), (0.05, 0.4)), OBJECT_RESIZE, 3),
    "capsule": NsaConfig(((0.03, 0.15), (0.03, 0.4)), OBJECT_RESIZE, 3, 0.7),
    "hazelnut": NsaConfig(((0.03, 0.35), (0.03, 0.35)), OBJECT_RESIZE, 3, 0.7),
    "metal_nut": NsaConfig(WIDE, OBJECT_RESIZE, 3, 0.5),
    "pill": NsaConfig(((0.03, 0.2), (0.03, 0.4)), OBJECT_RESIZE, 3, 0.7),
    "screw": NsaConfig(((0.03, 0.12), (0.03, 0.12)), OBJECT_RESIZE, 4, 0.5),
    "toothbrush": NsaConfig(((0.03, 0.4), (0.03, 0.2)), OBJECT_RESIZE, 3, 0.25),
    "transistor": NsaConfig(WIDE, OBJECT_RESIZE, 3),
    "zipper": NsaConfig(((0.03, 0.4), (0.03, 0.2)), OBJECT_RESIZE, 4, 0.7),
}
TEXTURE = NsaConfig()


@dataclass(frozen=True)
class Box:
    top: int
    left: int
    height: int
    width: int

    def of(self, image: np.ndarray) -> np.ndarray:
        return image[self.top:self.top + self.height, self.left:self.left + self.width]

    def __str__(self) -> str:
        return f"{self.top},{self.left},{self.height},{self.width}"


def share(mask: np.ndarray | None) -> float:
    """Fraction of set pixels (1.0 for no mask)."""
    return 1.0 if mask is None else float(np.count_nonzero(mask)) / max(mask.size, 1)


@register
class Nsa(Generator):
    name = "nsa"
    columns: ClassVar[dict[str, str]] = {"donor": "string", "num_patches": "int64", "patches": "string"}

    def __init__(self, donors: Sequence[np.ndarray], donor_ids: Sequence[str], config: NsaConfig = TEXTURE,
                 foreground: str | None = None, clone: str = "normal", strength: float = 1.0):
        if not donors:
            raise SynthError("nsa needs the category's normal images as donors; the category has none")
        if clone not in CLONE_MODES:
            raise SynthError(f"option clone must be one of {', '.join(CLONE_MODES)}, got {clone!r}")
        self.donors, self.donor_ids = list(donors), list(donor_ids)
        self.config = config
        self.foreground = check_rule(foreground)
        self.clone = clone
        self.strength = strength

    @classmethod
    def from_settings(cls, settings: GeneratorSettings) -> "Nsa":
        config = NSA_OBJECTS.get(settings.category, TEXTURE)
        patches = settings.number_range("patches", (config.num_patches, config.num_patches))
        if patches[0] != patches[1] or patches[0] < 1 or patches[0] != int(patches[0]):
            raise SynthError(f"option patches must be a whole number >= 1, got {settings.extra.get('patches')!r}")
        config = NsaConfig(config.width_bounds, config.resize_bounds, int(patches[0]), config.min_object)
        foreground = settings.foreground
        if foreground is None and settings.category in NSA_OBJECTS:
            foreground = default_rule(settings.category)
        strength = settings.number_range("strength", (1.0, 1.0))
        if strength[0] != strength[1] or strength[0] <= 0:
            raise SynthError(f"option strength must be one positive value, got {settings.extra.get('strength')!r}")
        clone = settings.choice("clone", "normal", tuple(CLONE_MODES))
        category = load_category(settings.data, settings.category, settings.layout, settings.size)
        return cls(category.train_images, category.train_ids, config, foreground, clone, strength[0])

    def _foreground(self, image: np.ndarray) -> np.ndarray | None:
        return None if self.foreground is None else foreground_mask(image, self.foreground)

    def _patch(self, out: np.ndarray, donor: np.ndarray, fg_out: np.ndarray | None, fg_donor: np.ndarray | None,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str] | None:
        """One patch of ``donor`` cloned into ``out``: (image, shape mask in the image, description), or
        None when no place is found or OpenCV refuses (the reference then skips the patch)."""
        dims = out.shape[:2]
        bounds = [(round(lo * side), round(hi * side)) for (lo, hi), side in zip(self.config.width_bounds, dims)]
        shape_k, scale_k, offset = HALF_WIDTH_GAMMA
        half = [max(int(np.clip((offset + rng.gamma(shape_k, scale_k)) * side, lo, hi)), 1)
                for side, (lo, hi) in zip(dims, bounds)]
        for _ in range(PLACEMENT_TRIES):
            centre = [int(rng.integers(lo, max(side - lo, lo + 1))) for side, (lo, _) in zip(dims, bounds)]
            start = [max(c - h, 0) for c, h in zip(centre, half)]
            stop = [min(c + h, side) for c, h, side in zip(centre, half, dims)]
            source = Box(start[0], start[1], stop[0] - start[0], stop[1] - start[1])
            if share(None if fg_donor is None else source.of(fg_donor)) > self.config.min_object:
                break
        else:
            return None
        scale = float(np.clip(rng.normal(1.0, 0.5), *self.config.resize_bounds))
        (lo_h, hi_h), (lo_w, hi_w) = bounds
        new_h = float(np.clip(scale * source.height, lo_h, hi_h))
        new_w = int(np.clip(int(new_h / source.height * source.width), lo_w, hi_w))
        new_h = int(np.clip(int(new_w / source.width * source.height), lo_h, hi_h))
        if min(new_h, new_w) < 3:
            return None
        patch = cv2.resize(source.of(donor), (new_w, new_h))
        fg_patch = None if fg_donor is None else cv2.resize(source.of(fg_donor), (new_w, new_h),
                                                            interpolation=cv2.INTER_NEAREST)
        for _ in range(PLACEMENT_TRIES):
            cy = int(rng.integers(new_h // 2 + 1, max(dims[0] - new_h // 2 - 1, new_h // 2 + 2)))
            cx = int(rng.integers(new_w // 2 + 1, max(dims[1] - new_w // 2 - 1, new_w // 2 + 2)))
            target = Box(cy - new_h // 2, cx - new_w // 2, new_h, new_w)
            if fg_patch is None or fg_out is None:
                break
            overlap = np.count_nonzero(target.of(fg_out) & fg_patch) / max(np.count_nonzero(fg_patch), 1)
            if share(fg_patch) > self.config.min_object and overlap > MIN_OVERLAP:
                break
        else:
            return None
        if target.top + new_h > dims[0] or target.left + new_w > dims[1]:
            return None
        shape = np.full((new_h, new_w), 255, np.uint8)
        clone_shape = shape
        if fg_patch is not None and fg_out is not None:
            shape = fg_patch | target.of(fg_out)  # only where either image has its object
            clone_shape = shape | (~fg_patch & ~target.of(fg_out))  # background too, against artefacts
        cloned = poisson_paste(out, patch, clone_shape, target.top, target.left, self.clone)
        if cloned is None:
            return None
        region = np.zeros(dims, np.uint8)
        target.of(region)[...] = shape
        return cloned, region, f"{source}>{target}@{scale:.3f}"

    def _attempt(self, normal: np.ndarray, donor: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[str]]:
        fg_out, fg_donor = self._foreground(normal), self._foreground(donor)
        out, region, described = normal, np.zeros(normal.shape[:2], np.uint8), []
        for i in range(self.config.num_patches):
            if i > 0 and rng.integers(2) == 0:
                continue
            made = self._patch(out, donor, fg_out, fg_donor, rng)
            if made is not None:
                out, patch_region, text = made
                region |= patch_region
                described.append(text)
        if self.strength != 1.0:
            change = (out.astype(np.float32) - normal) * self.strength
            out = np.clip(np.rint(normal + change), 0, 255).astype(np.uint8)
        mask = changed_mask(normal, out, LABEL_TOLERANCE, LABEL_MEDIAN) & region
        return out, mask, described

    def generate(self, normal: np.ndarray, rng: np.random.Generator) -> Sample:
        height, width = normal.shape[:2]
        for _ in range(SAMPLE_TRIES):
            index = int(rng.integers(len(self.donors)))
            donor = self.donors[index]
            if donor.shape != normal.shape:
                donor = cv2.resize(donor, (width, height), interpolation=cv2.INTER_AREA)
            out, mask, described = self._attempt(normal, donor, rng)
            if mask.any():
                # pixels outside the mask keep their values: the label and the image agree
                out = np.where(mask[..., None] > 0, out, normal)
                params = {"donor": self.donor_ids[index], "num_patches": len(described), "patches": ";".join(described)}
                return Sample(out, mask, params)
        raise SynthError(f"nsa could not make a visible patch in {SAMPLE_TRIES} tries on a {height}x{width} image "
                         "(NSA's patches need about 32 px per side)")

    def describe(self) -> dict[str, Any]:
        return {"num_donors": len(self.donors), "clone": self.clone, "strength": self.strength,
                "num_patches": self.config.num_patches, "width_bounds": self.config.width_bounds,
                "resize_bounds": self.config.resize_bounds, "half_width_gamma": HALF_WIDTH_GAMMA,
                "min_object": self.config.min_object, "min_overlap": MIN_OVERLAP,
                "label_tolerance": LABEL_TOLERANCE, "label_median": LABEL_MEDIAN,
                "foreground": self.foreground or "none"}

