"""Realism report of a diffusion model or a synth dataset against the real normal images.

Per group of samples (a strength s for a model; the whole dataset for a dataset):
- colour error: mean over samples and channels of |mean RGB − the nearest real image's mean RGB|
  (grey levels), and the fraction of samples whose mean colour lies inside the real images' range
  of mean colours widened by ``COLOUR_MARGIN`` grey levels;
- KID (unbiased MMD² with the cubic polynomial kernel, mean and std over random subsets) on
  globally pooled EfficientNet-Lite0 features, beside the same KID between two halves of the real
  images (the floor: what "as real as the real images" reads as with this many images);
- diversity: mean pairwise cosine distance of those features, and the same among the real images.
- anomaly contrast (``synth.quality.contrast``): for a model, each sample's change from the s = 0 sample of
  the same seed (the same noise), over the whole image: the median change in grey levels and the
  share of pixels changed by more than 8 grey levels, so one table shows which s gives visible and
  still realistic samples; for a blended dataset with ``--data``, the same inside its masks against
  the source images.
For a model, also the per-scale ε slopes: on real images noised at timestep t, the least-squares
slope of the predicted ε on the true ε after averaging both over k x k blocks (k = 1 … size/2) and
over the whole image ("mean"), pooled over ``SLOPE_DRAWS`` noise draws, with the image-mean slope's
standard deviation over the draws ("mean_std": one draw of 32 images at t = 100 moves it by ±0.1).
A slope near 1 means the model removes that scale of the noise; the image-mean slope is what decides
colour casts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from synth.backbones import create_backbone
from synth.data import ImageSize, load_category
from synth.data.images import decode_bytes
from synth.diffusion.model import ModelConfig, load_model
from synth.diffusion.schedule import Schedule, q_sample
from synth.errors import SynthError
from synth.hub import is_hub_id
from synth.quality.contrast import VISIBLE, dataset_rows, pixel_change, summarize
from synth.shards import completed_shards, read_manifest, verify_dataset

log = logging.getLogger("synth")

COLOUR_MARGIN = 3.0  # grey levels added on both sides of the real images' range of mean colours
FEATURE_SIZE = 224  # images are resized to this side before the backbone (as KID resizes for Inception)
KID_SUBSET = 100
KID_SUBSETS = 50
SLOPE_TIMESTEPS = (50, 100, 300, 500, 999)
SLOPE_IMAGES = 32
SLOPE_DRAWS = 4


@dataclass
class RealImages:
    """The real normal images a score compares against, at the samples' resolution."""

    images: np.ndarray  # N x H x W x 3 uint8
    features: np.ndarray  # N x D float64

    @property
    def mean_colours(self) -> np.ndarray:
        return mean_colours(self.images)


def mean_colours(images: np.ndarray) -> np.ndarray:
    """Per-image mean RGB in grey levels, N x 3."""
    return images.reshape(len(images), -1, 3).astype(np.float64).mean(axis=1)


def colour_error(samples: np.ndarray, real: np.ndarray, margin: float = COLOUR_MARGIN) -> dict[str, float]:
    """Colour error of ``samples`` against ``real`` (both N x H x W x 3 uint8); see the module docstring."""
    fake_means, real_means = mean_colours(samples), mean_colours(real)
    distances = ((fake_means[:, None, :] - real_means[None, :, :]) ** 2).sum(-1)
    nearest = real_means[distances.argmin(axis=1)]
    low, high = real_means.min(axis=0) - margin, real_means.max(axis=0) + margin
    inside = ((fake_means >= low) & (fake_means <= high)).all(axis=1)
    return {"colour_error": float(np.abs(fake_means - nearest).mean()),
            "inside_colour_range": float(inside.mean()),
            "channel_spread": float((fake_means.max(axis=1) - fake_means.min(axis=1)).mean())}


def kid(first: np.ndarray, second: np.ndarray, subset_size: int = KID_SUBSET, num_subsets: int = KID_SUBSETS,
        seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance of two feature sets: (mean, std) of the unbiased MMD² over subsets."""
    size = min(subset_size, len(first), len(second))
    if size < 2:
        raise SynthError(f"KID needs at least 2 images on each side, got {len(first)} and {len(second)}")
    if size == min(len(first), len(second)) < subset_size:
        log.warning(f"KID from {size} images (under {subset_size}): its subsets hold the whole smaller set, so its ± "
                    "is no spread, and the unbiased estimate is noisy at this size (it can be negative)")
    rng = np.random.default_rng(seed)
    dim = first.shape[1]
    values = []
    for _ in range(num_subsets):
        x = first[rng.choice(len(first), size, replace=False)]
        y = second[rng.choice(len(second), size, replace=False)]
        k_xx, k_yy, k_xy = ((a @ b.T / dim + 1.0) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        off_diagonal = size * (size - 1)
        values.append((k_xx.sum() - np.trace(k_xx)) / off_diagonal + (k_yy.sum() - np.trace(k_yy)) / off_diagonal
                      - 2.0 * k_xy.mean())
    return float(np.mean(values)), float(np.std(values))


def diversity(features: np.ndarray) -> float:
    """Mean pairwise cosine distance between feature vectors."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True).clip(min=1e-12)
    similarity = unit @ unit.T
    count = len(unit)
    return float((count * count - similarity.sum()) / max(count * (count - 1), 1))


class FeatureExtractor:
    """Globally pooled stride-32 features of the offline EfficientNet-Lite0 backbone."""

    def __init__(self, batch_size: int = 32) -> None:
        self.backbone = create_backbone()
        self.batch_size = batch_size

    def __call__(self, images: np.ndarray) -> np.ndarray:
        rows = []
        for start in range(0, len(images), self.batch_size):
            batch = np.stack([cv2.resize(image, (FEATURE_SIZE, FEATURE_SIZE), interpolation=cv2.INTER_LINEAR)
                              for image in images[start:start + self.batch_size]])
            (features,) = self.backbone(batch, [32])
            rows.append(features.mean(dim=(2, 3)).double().numpy())
        return np.concatenate(rows)


def load_real(data: Path | None, category: str, size: ImageSize | int, layout: str | None,
              extractor: FeatureExtractor) -> RealImages:
    """The category's normal training images at ``size`` and their features."""
    source = load_category(data, category, layout, size)
    if len(source) < 4:
        raise SynthError(f"category {category!r} has {len(source)} normal images; the score needs at least 4")
    images = np.stack(source.train_images)
    return RealImages(images, extractor(images))


def group_scores(samples: np.ndarray, real: RealImages, extractor: FeatureExtractor) -> dict[str, Any]:
    """Colour, KID and diversity of one group of samples."""
    features = extractor(samples)
    kid_mean, kid_std = kid(features, real.features)
    return {"n": len(samples), **colour_error(samples, real.images), "kid": kid_mean, "kid_std": kid_std,
            "diversity": diversity(features)}


def real_floor(real: RealImages, seed: int = 0) -> dict[str, Any]:
    """KID between two random halves of the real images, and their diversity."""
    order = np.random.default_rng(seed).permutation(len(real.features))
    half = len(order) // 2
    kid_mean, kid_std = kid(real.features[order[:half]], real.features[order[half:2 * half]])
    return {"n": len(order), "kid_halves": kid_mean, "kid_halves_std": kid_std,
            "diversity": diversity(real.features)}


def block_products(predicted: torch.Tensor, true: torch.Tensor) -> dict[str, tuple[float, float]]:
    """(sum of predicted x true, sum of true²) of ε averaged per block size (1 … size/2) and per image."""
    products = {}
    size = true.shape[-1]
    block = 1
    while block < size:
        a, b = F.avg_pool2d(predicted, block), F.avg_pool2d(true, block)
        products[str(block)] = float((a * b).sum()), float((b * b).sum())
        block *= 2
    a, b = predicted.mean(dim=(2, 3)), true.mean(dim=(2, 3))
    products["mean"] = float((a * b).sum()), float((b * b).sum())
    return products


@torch.no_grad()
def epsilon_slopes(unet: torch.nn.Module, config: ModelConfig, real: RealImages,
                   timesteps: Sequence[int] = SLOPE_TIMESTEPS, seed: int = 0,
                   draws: int = SLOPE_DRAWS) -> dict[str, dict[str, float]]:
    """Per-scale least-squares slopes of the model's ε prediction on real images, by timestep.

    Plain N(0, I) noise, ``draws`` draws pooled; "mean_std" is the image-mean slope's std over the draws.
    """
    schedule = Schedule.linear(config.num_train_timesteps)
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.from_numpy(real.images[:SLOPE_IMAGES]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    labels = torch.zeros(len(x0), dtype=torch.long) if config.num_classes else None
    result = {}
    for t in timesteps:
        index = torch.full((len(x0),), int(t), dtype=torch.long)
        per_draw = []
        for _ in range(draws):
            noise = torch.randn(x0.shape, generator=generator)
            x_t = q_sample(schedule, x0, index, noise)
            predicted = unet(x_t.to(unet.device), index.to(unet.device), class_labels=labels).sample[:, :3]
            per_draw.append(block_products(predicted.float().cpu(), noise))
        row = {scale: sum(d[scale][0] for d in per_draw) / sum(d[scale][1] for d in per_draw) for scale in per_draw[0]}
        row["mean_std"] = float(np.std([d["mean"][0] / d["mean"][1] for d in per_draw]))
        result[str(t)] = row
    return result


def dataset_images(directory: Path, limit: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Up to ``limit`` images of a synth dataset (in row order) and a description of the group."""
    shards = completed_shards(directory)
    if not shards:
        raise SynthError(f"{directory} holds no synth dataset shards")
    images, strengths = [], []
    for shard in shards:
        table = pq.read_table(shard, columns=[c for c in ("image", "s") if c in pq.read_schema(shard).names])
        for row in table.to_pylist():
            image = decode_bytes(row["image"]["bytes"], cv2.IMREAD_COLOR)
            if image is None:
                raise SynthError(f"an undecodable image in {shard}")
            images.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
            strengths.append(row.get("s"))
            if len(images) == limit:
                break
        if len(images) == limit:
            break
    known = [s for s in strengths if s is not None]
    group = {"s_min": min(known), "s_max": max(known)} if known else {}
    return np.stack(images), group


def sample_model(unet: torch.nn.Module, config: ModelConfig, category: str, strength: float, count: int,
                 steps: int, spacing: str, bf16: bool, seed: int, batch_size: int = 32) -> np.ndarray:
    """``count`` SDAS samples at strength ``strength`` (image i from (seed, i), the same for every s)."""
    from synth.diffusion.sampler import SDASSampler, image_generators, to_uint8

    sampler = SDASSampler(unet, steps, bf16=bf16, spacing=spacing)
    label = config.class_names.index(category) if config.num_classes else None
    batches = []
    for start in range(0, count, batch_size):
        indices = range(start, min(start + batch_size, count))
        labels = None if label is None else torch.full((len(indices),), label)
        batches.append(to_uint8(sampler.sample(len(indices), strength, image_generators(seed, indices), labels)))
    return np.concatenate(batches)


def score_model(model: str | Path, category: str | None, data: Path | None, layout: str | None,
                strengths: Sequence[float], count: int, steps: int, spacing: str, seed: int = 0,
                bf16: bool | None = None, progress: bool = True) -> dict[str, Any]:
    """The realism report of a diffusion model: one group per strength, the floor and the ε slopes."""
    from synth.diffusion.models import find_model
    from synth.diffusion.precision import fast_bf16
    from synth.pipeline.provenance import model_provenance

    if not Path(model).exists() and not is_hub_id(model) and "/" not in str(model):  # a category: its model
        category = category or str(model)
        directory = find_model(category)
    else:
        directory = find_model(category or "", model)
    unet, config = load_model(directory)
    category = category or config.class_names[0]
    if config.num_classes and category not in config.class_names:
        raise SynthError(f"model {model} was not trained on category {category!r}")
    bf16 = fast_bf16(unet.device) if bf16 is None else bf16
    extractor = FeatureExtractor()
    real = load_real(data, category, config.size, layout, extractor)
    samples = {strength: sample_model(unet, config, category, strength, count, steps, spacing, bf16, seed)
               for strength in tqdm(strengths, desc="score", unit="s", disable=not progress)}
    reference = samples[0.0] if 0.0 in samples else \
        sample_model(unet, config, category, 0.0, count, steps, spacing, bf16, seed)
    groups = {f"s={strength:g}": {"s": strength, **group_scores(images, real, extractor),
                                  "contrast": change_from_reference(images, reference)}
              for strength, images in samples.items()}
    return {"kind": "model", "model": model_provenance(directory), "category": category,
            "model_steps": config.steps, "model_loss": config.loss, "size": config.size,
            "sampling": {"steps": steps, "spacing": spacing, "precision": "bf16" if bf16 else "fp32", "seed": seed},
            "real": real_floor(real), "groups": groups, "epsilon_slopes": epsilon_slopes(unet, config, real)}


def change_from_reference(samples: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """Anomaly contrast of samples against their s = 0 twins (same seeds), over the whole image."""
    return summarize((pixel_change(image, twin), np.ones(image.shape[:2], bool))
                     for image, twin in zip(samples, reference))


def score_dataset(directory: Path, category: str | None, data: Path | None, layout: str | None,
                  count: int) -> dict[str, Any]:
    """The realism report of the first ``count`` images of a synth dataset."""
    manifest = read_manifest(directory) or {}
    if manifest:
        verify_dataset(directory, manifest)  # a truncated or foreign shard is one line, not a traceback
    if category and manifest.get("category") not in (None, category):
        log.warning("scoring a %s dataset against the normal images of %s", manifest["category"], category)
    category = category or manifest.get("category")
    if not category:
        raise SynthError(f"{directory} names no category; pass --category")
    images, group = dataset_images(directory, count)
    extractor = FeatureExtractor()
    size = ImageSize.of(images[0])
    real = load_real(data, category, size, layout, extractor)
    label = manifest.get("generator", "dataset")
    contrast = summarize(dataset_rows(directory, data, count)) if data is not None else None
    masked = contrast is not None and contrast["rows"] > 0  # raw rows have no mask to measure inside
    group.update(group_scores(images, real, extractor), contrast=contrast if masked else None)
    return {"kind": "dataset", "dataset": Path(directory).name, "category": category,
            "generator": manifest.get("generator"), "size": size.record()["size"],
            "real": real_floor(real), "groups": {label: group}}


def report_markdown(report: dict[str, Any]) -> str:
    """The report as a markdown page: one table of groups, the real-vs-real floor, the ε slopes."""
    subject = report["model"]["id"] if report["kind"] == "model" else report["dataset"]
    real = report["real"]
    lines = [f"# Realism of {subject} ({report['category']}, {report['size']} px)", "",
             "| group | n | colour error (grey levels) | inside colour range ±3 | KID | diversity "
             f"| anomaly change (grey levels) | pixels changed > {VISIBLE} |",
             "|---|---|---|---|---|---|---|---|"]
    for name, group in report["groups"].items():
        contrast = group.get("contrast")
        change = f"{contrast['inside']:.1f} | {contrast['visible']:.0%}" if contrast else "– | –"
        lines.append(f"| {name} | {group['n']} | {group['colour_error']:.2f} | {group['inside_colour_range']:.0%} | "
                     f"{group['kid']:.3g} ± {group['kid_std']:.2g} | {group['diversity']:.3f} | {change} |")
    lines.append(f"| real (halves) | {real['n']} | 0 | 100% | {real['kid_halves']:.3g} ± "
                 f"{real['kid_halves_std']:.2g} | {real['diversity']:.3f} | – | – |")
    where = ("from the s = 0 sample of the same seed, whole image" if report["kind"] == "model"
             else "inside the masks, from the source images")
    lines += ["", f"Anomaly change: median over images of the mean absolute RGB change {where}; pixels changed: "
              f"median share changed by more than {VISIBLE} grey levels."]
    slopes = report.get("epsilon_slopes")
    if slopes:
        scales = [k for k in next(iter(slopes.values())) if k != "mean_std"]
        lines += ["", "Slope of predicted on true ε per block size (1 = removed perfectly; mean ± std over "
                  "noise draws):", "", "| t | " + " | ".join(scales) + " |", "|---" * (len(scales) + 1) + "|"]
        lines += [f"| {t} | " + " | ".join(f"{row[k]:.2f}" for k in scales[:-1]) + f" | {row['mean']:.2f} ± "
                  f"{row.get('mean_std', 0.0):.2f} |" for t, row in slopes.items()]
    return "\n".join(lines) + "\n"


def is_dataset(path: Path) -> bool:
    """True for a synth dataset directory (it has shards), False for anything else (a model)."""
    return Path(path).is_dir() and bool(completed_shards(path))


def check_report_dir(out: Path, overwrite: bool = False) -> tuple[Path, Path]:
    """The report's two paths in ``out``; SynthError if ``out`` is a file or holds a score (without ``overwrite``)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SynthError(f"--out {out} exists and is not a directory")
    paths = out / "score.json", out / "score.md"
    if not overwrite and any(p.exists() for p in paths):
        raise SynthError(f"{out} already holds a score; use --overwrite to replace it")
    return paths


def write_report(report: dict[str, Any], out: Path, overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``out/score.json`` and ``out/score.md``; refuse to replace them without ``overwrite``."""
    import json

    paths = check_report_dir(out, overwrite)
    Path(out).mkdir(parents=True, exist_ok=True)
    paths[0].write_text(json.dumps(report, indent=2) + "\n")
    paths[1].write_text(report_markdown(report))
    return paths
