"""GLASS (Chen et al., ECCV 2024): SimpleNet's adaptor and discriminator, trained against global anomalies made by
gradient ascent in feature space (GAS) and local anomalies made in image space (LAS).

Follows cqylunlun/GLASS (glass.py, model.py, datasets/mvtec.py, shell/run-mvtec.sh):

* Features as SimpleNet's (the PatchCore aggregation of the stride-8 and stride-16 taps), one linear adaptor
  (``pre_proj 1``) and the discriminator Linear-BatchNorm-LeakyReLU(0.2)-Linear(no bias) whose sigmoid is the
  probability that a patch is anomalous (width dim // 1.5: GLASS's 1024 for its 1536-d features).
* Centre c: the mean adapted normal feature at every grid position, recomputed before every epoch.
* GAS: Gaussian noise N(0, 0.015^2) on the adapted normal features, then 20 gradient-ascent steps of length
  0.001 along the normalised gradient of the discriminator's loss on them (towards "normal"); every 5 steps the
  points are truncated to a ring: around c with radii [r, 2r] (hypersphere branch), r = the 0.75 quantile of the
  normal (and unmasked LAS) features' distances to c, or around their own normal feature with radii [0.5, 1]
  (manifold branch). The branch is GLASS's image-level spectrogram judgement of the mean training image
  (``distribution`` "auto"), or set by hand.
* LAS: adapted features of images with local anomalies; a patch is anomalous when its cell of the mask holds any
  anomalous pixel (max-pooled mask); in the hypersphere branch the anomalous ones are pushed to [2r, 4r] around c.
* Loss: BCE(normal -> 0) + BCE(GAS -> 1) + focal loss (gamma 2, equal class weights) on the LAS patches, the half
  hardest of them only (p = 0.5); adaptor Adam lr 1e-4, discriminator AdamW lr 2e-4.
* Score: patch probability; image score = the largest, map upsampled (bilinear) and smoothed (Gaussian, sigma 4).

Departures (also in docs/detectors/glass.md):

* LAS images come pre-generated from synth shards (``--anomalies``, e.g. the draem generator: Perlin masks x DTD
  textures, GLASS's own recipe) through the shared training loop of ``detectors.training.loop``; a batch of 16 is 8
  normal images and 8 anomalies, the normal features are the 8 normal images and the 8 anomalies' sources.
* No test-set checkpoint choice (GLASS keeps the epoch with the best test image + pixel AUROC): the state with the
  best score on held-out synthetic rows is kept and training stops on its plateau, at most 800 optimiser steps
  (CPU time; batch 8: 4 normal + 4 LAS images). ``paper_config``: 640 epochs of batch 16, no early stop.
* The GAS offset is a constant for the final loss: gradients reach the adaptor through the normal feature it was
  added to (GLASS also differentiates through its last truncation's scale factor).
* Features are divided by one scalar so that their training-set standard deviation is ``feature_std`` (0.1), as
  for SimpleNet here: the noise level and the manifold radii are absolute and were set for WideResNet-50 features.
* The adaptor's Adam L2 penalty 1e-5 becomes AdamW's decoupled decay 1e-5 (one optimiser with two groups); the
  focal loss is computed on logits without GLASS's 1e-5 label smoothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from annotated_types import Gt
from torch import nn

from detectors.base import AtLeastOne, NonNegativeFloat, NonNegativeInt, Share, Ratio, register
from detectors.data.training import TrainingSet
from detectors.features import DEFAULT_STRIDES, aggregate_patches, anomaly_maps, default_embed_dim
from detectors.models.simplenet import OFFICIAL_EMBED_DIM, Discriminator
from detectors.training.loop import FeatureCache, SyntheticConfig, SyntheticDetector
from detectors.training.losses import binary_focal_loss
from synth.backbones import create_backbone

PositiveFloat = Annotated[float, Gt(0)]

ASCENT_STEP = 0.001  # length of one gradient-ascent step (GLASS: fixed)
PROJECT_EVERY = 5  # ascent steps between truncations (GLASS: fixed)
MANIFOLD_RING = (0.5, 1.0)  # manifold branch: distance to the normal feature (GLASS: fixed)
LAS_RING = (2.0, 4.0)  # hypersphere branch: masked LAS features at [2r, 4r] from the centre (GLASS: fixed)
FOCAL_GAMMA = 2.0
SCALE_IMAGES = 64  # normal images whose features set the feature scale
JUDGE_SIZE, JUDGE_BLUR, JUDGE_LEVEL = 289, 39, 170  # GLASS's spectrogram judgement of the mean training image


@dataclass
class GlassConfig(SyntheticConfig):
    strides: tuple[int, ...] = DEFAULT_STRIDES
    embed_dim: AtLeastOne | None = None  # None: default_embed_dim(backbone, strides, 1536)
    hidden: AtLeastOne | None = None  # discriminator width; None: embed_dim // 1.5 (GLASS: 1024 for 1536)
    noise_std: PositiveFloat = 0.015
    ascent_steps: NonNegativeInt = 20  # GLASS --step
    radius: Ratio = 0.75  # quantile of the normal features' distances to the centre (GLASS --radius)
    hard_share: Share = 0.5  # the easiest share of LAS patches left out of the focal loss (GLASS --p)
    distribution: Literal["auto", "hypersphere", "manifold"] = "auto"  # GAS/LAS truncation; auto: GLASS's judgement
    feature_std: PositiveFloat | None = 0.1  # scale features to this training-set std (None: raw)
    sigma: NonNegativeFloat = 4.0
    lr: NonNegativeFloat = 1e-4  # the adaptor's; the discriminator's is 2 lr (GLASS's 1e-4 / 2e-4)
    batch_size: AtLeastOne = 8  # 4 normal images + 4 LAS anomalies and their 4 sources (GLASS: 8 images + 8 twins)


@dataclass(frozen=True)
class Ring:
    """Truncation target: every point's distance to its anchor is clamped to [low, high]."""

    anchors: torch.Tensor
    low: torch.Tensor | float
    high: torch.Tensor | float

    def project(self, points: torch.Tensor) -> torch.Tensor:
        offset = points - self.anchors
        norm = offset.norm(dim=1, keepdim=True)
        return self.anchors + offset * (norm.clamp(self.low, self.high) / (norm + 1e-10))


def judge_hypersphere(images: list[np.ndarray]) -> bool:
    """GLASS's distribution judgement: True (hypersphere) when the spectrum of the blurred mean training image has
    many strong, concentrated components (aligned objects), False (manifold) otherwise (textures, unaligned)."""
    mean = np.mean(np.stack(images), axis=0).astype(np.uint8)
    grey = cv2.cvtColor(cv2.resize(mean, (JUDGE_SIZE, JUDGE_SIZE)), cv2.COLOR_RGB2GRAY)
    grey = cv2.blur(grey, (JUDGE_BLUR, JUDGE_BLUR)).astype(np.float32)
    with np.errstate(divide="ignore"):
        magnitude = 20 * np.log(np.abs(np.fft.fftshift(np.fft.fft2(grey))))
    ys, xs = np.nonzero(magnitude > JUDGE_LEVEL)
    if not len(ys):
        return False
    cy, cx = JUDGE_SIZE // 2, JUDGE_SIZE // 2
    radius = np.hypot(ys - cy, xs - cx).max()
    box_density = len(ys) / (4 * max(np.abs(xs - cx).max(), 1) * max(np.abs(ys - cy).max(), 1))
    grid_y, grid_x = np.indices((2 * JUDGE_SIZE, 2 * JUDGE_SIZE))
    disc_density = len(ys) / (np.count_nonzero(np.hypot(grid_y - cy, grid_x - cx) <= radius) + 1e-10)
    return bool((box_density > 0.21 or disc_density > 0.21) and radius > 12 and len(ys) > 60)


@register
class Glass(SyntheticDetector):
    """Adaptor + discriminator trained on normal features, gradient-ascent global anomalies and local anomalies."""

    name = "glass"
    default_max_steps = 800  # CPU scaling: about 2 s a step at 256 px on one loaded core (docs/detectors/glass.md)
    config_class = GlassConfig
    config: GlassConfig

    def __init__(self, config: GlassConfig | None = None) -> None:
        super().__init__(config)
        torch.manual_seed(self.config.seed)
        self.strides = self.config.strides
        self.backbone = create_backbone(self.config.backbone, self.config.backbone_weights)
        self.backbone.bf16 = self.config.use_bf16()
        self.dim = self.config.embed_dim or default_embed_dim(self.backbone, self.strides, OFFICIAL_EMBED_DIM)
        self.adaptor = nn.Linear(self.dim, self.dim)
        nn.init.xavier_normal_(self.adaptor.weight)
        self.discriminator = Discriminator(self.dim, self.config.hidden or int(self.dim // 1.5))
        self.feature_scale = torch.ones(())
        self.centre = torch.zeros(0)
        self.hypersphere = self.config.distribution == "hypersphere"

    @classmethod
    def paper_config(cls, **overrides) -> GlassConfig:
        """GLASS's schedule: 640 epochs of 8 normal + 8 LAS images, no early stop."""
        return GlassConfig(**{"epochs": 640, "patience": 0, "batch_size": 16, **overrides})

    def networks(self) -> dict[str, nn.Module]:
        return {"adaptor": self.adaptor, "discriminator": self.discriminator}

    def optimizer(self, parameters: list[nn.Parameter]) -> torch.optim.Optimizer:
        """GLASS: adaptor at lr (L2 1e-5), discriminator at 2 lr (AdamW's default decay 0.01)."""
        return torch.optim.AdamW([
            {"params": self.adaptor.parameters(), "lr": self.config.lr, "weight_decay": 1e-5},
            {"params": self.discriminator.parameters(), "lr": 2 * self.config.lr, "weight_decay": 0.01}])

    def prepare(self, data: TrainingSet, sources: np.ndarray) -> None:
        """Feature scale from the first normal images, and the truncation branch."""
        self.feature_scale = torch.ones(())
        if self.config.feature_std:
            sample = np.stack(data.normal[:SCALE_IMAGES])
            features = [f.float() for f in self.backbone(sample, self.strides)]
            self.feature_scale = aggregate_patches(features, self.dim).std() / self.config.feature_std
        if self.config.distribution == "auto":
            self.hypersphere = judge_hypersphere(data.normal)

    def fit(self, data: TrainingSet) -> None:
        super().fit(data)
        self.training["distribution"] = "hypersphere" if self.hypersphere else "manifold"

    def adapt(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Adapted patch features (B, h, w, dim) from backbone taps."""
        return self.adaptor(aggregate_patches(features, self.dim) / self.feature_scale)

    def start_epoch(self, cache: FeatureCache) -> None:
        """The centre: mean adapted normal feature at every grid position."""
        step = self.config.batch_size
        with torch.no_grad():
            total = sum(self.adapt([n[start:start + step].float() for n in cache.normal]).sum(0)
                        for start in range(0, len(cache.normal[0]), step))
        self.centre = total / len(cache.normal[0])

    def global_anomalies(self, normal: torch.Tensor, ring: Ring) -> torch.Tensor:
        """GAS: normal features (N, dim) + noise, moved by gradient ascent on the discriminator's loss and truncated
        to ``ring`` every few steps (detached)."""
        normal = normal.detach().float()  # steps of 0.001 vanish in bf16
        points = normal + torch.randn_like(normal) * self.config.noise_std
        for step in range(self.config.ascent_steps):
            points.requires_grad_(True)
            logits = self.discriminator(torch.cat([normal, points]))[len(normal):, 0]
            loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
            (gradient,) = torch.autograd.grad(loss, points)
            with torch.no_grad():
                points = points + ASCENT_STEP * gradient / (gradient.norm(dim=1, keepdim=True) + 1e-10)
                if (step + 1) % PROJECT_EVERY == 0:
                    points = ring.project(points)
        return points.detach()

    def loss(self, features: list[torch.Tensor], targets: list[torch.Tensor], masks: torch.Tensor) -> torch.Tensor:
        anomalous = masks.flatten(1).any(1)
        normal = self.adapt(targets).float()
        count, height, width, dim = normal.shape
        local = self.adapt([f[anomalous] for f in features]).float().reshape(-1, dim)
        labels = F.adaptive_max_pool2d(masks[anomalous], (height, width)).reshape(-1)
        normal = normal.reshape(-1, dim)
        centre = self.centre.reshape(1, -1, dim)
        normal_centre = centre.expand(count, -1, -1).reshape(-1, dim)
        local_centre = centre.expand(len(local) // (height * width), -1, -1).reshape(-1, dim)
        with torch.no_grad():
            distances = torch.cat([(local - local_centre)[labels == 0], normal - normal_centre]).norm(dim=1)
            radius = torch.quantile(distances.float(), self.config.radius)
        ring = Ring(normal_centre, radius, 2 * radius) if self.hypersphere else Ring(normal.detach(), *MANIFOLD_RING)
        shifted = normal + (self.global_anomalies(normal, ring) - normal.detach())
        logits = self.discriminator(torch.cat([normal, shifted]))[:, 0]
        loss = (F.binary_cross_entropy_with_logits(logits[:len(normal)], torch.zeros_like(logits[:len(normal)]))
                + F.binary_cross_entropy_with_logits(logits[len(normal):], torch.ones_like(logits[len(normal):])))
        if not len(local):
            return loss
        if self.hypersphere:
            pushed = Ring(local_centre, LAS_RING[0] * radius, LAS_RING[1] * radius).project(local)
            local = torch.where(labels[:, None] > 0, pushed, local)
        local_logits = self.discriminator(local)[:, 0]
        if self.config.hard_share > 0:
            error = (torch.sigmoid(local_logits) - labels).square().detach()
            hard = error >= torch.quantile(error.float(), self.config.hard_share)
            local_logits, labels = local_logits[hard], labels[hard]
        return loss + 2 * binary_focal_loss(local_logits, labels, alpha=0.5, gamma=FOCAL_GAMMA)

    def score_features(self, features: list[torch.Tensor], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        adapted = self.adapt(features)
        count, height, width, dim = adapted.shape
        logits = self.discriminator(adapted.reshape(-1, dim))[:, 0].float().reshape(count, height, width)
        image_scores = torch.sigmoid(logits.reshape(count, -1).amax(1).double())  # = max patch probability
        return image_scores.numpy(), anomaly_maps(torch.sigmoid(logits), size, self.config.sigma)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"feature_scale": self.feature_scale, **super().state_tensors()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.feature_scale = tensors["feature_scale"]
        super().load_state_tensors(tensors)
