"""RealNet (Zhang et al., CVPR 2024): reconstruction residuals of selected features, segmented by a discriminator.

Follows cnulab/RealNet (experiments/*/realnet.yaml, models/afs, models/recon, models/rrs):

* AFS: every channel of every tapped layer is scored by the mean over synthetic triples (A, I, M) of
  ||F([phi(A) - phi(I)]^2) - M||^2, F = per-channel min-max normalisation over the batch and M resized
  (nearest) to the feature map; the m_k channels with the lowest loss are kept (sorted), once, and
  saved with the model.
* One reconstruction UNet G_k per layer (no cross-scale alignment), trained with
  sum_k MSE(G_k(phi_k(A)), phi_k(I)).
* RRS: residuals E_k = (phi_k(A) - G_k(phi_k(A)))^2 upsampled (bilinear) to the finest layer and
  concatenated; channels ranked on batch-normalised residuals (BatchNorm without affine, momentum
  0.9), the top r/2 by global max pooling and the top r/2 by global average pooling (per image) are
  kept; a residual stack and convolutions map them to a 2-class map trained with cross-entropy
  against M. Anomaly map = softmax probability of class 1; image score = max of the map
  average-pooled over 16 x 16 windows.

Defaults and departures (also in docs/detectors.md):

* Channel counts scale with the backbone: m_k = the official ratio m_k / C_k of wide_resnet50_2
  (256/256, 512/512, 512/1024, 256/2048) times this backbone's widths (EfficientNet-Lite0:
  24, 40, 56, 40 of 24, 40, 112, 320) and r = a third of sum m_k (official 512 of 1536), even.
* G_k is diffusers' UNet2DModel (levels x1, x2, x4 of hide_channels_ratio * m_k channels, attention
  on the two coarser levels and in the middle, GroupNorm) called with a constant timestep; the
  official network has no time input and zero-initialises its output convolution.
* CPU-scaled defaults: 1 residual block per level (official 2), discriminator width 32 (official
  128), AFS on 128 anomalies (official 64 batches x 16), lr 1e-3 (official 1e-4) and training until
  the held-out synthetic score stops improving (patience 4 validations about 50 steps apart, capped
  at the whole epochs covering 2,000 steps; official: 1000 epochs); one epoch here is every normal image once plus as many anomalies (official: each image
  turns anomalous with probability 0.5). ``paper_config`` restores the official values.
* Checkpoints are selected on held-out synthetic rows (the official code validates on the test set).
* Training anomalies come pre-generated from synth shards; the normal source of each is found by
  ``normal_counterparts``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import UNet2DModel
from torch import nn
from tqdm import tqdm

from detectors.base import AtLeastOne, register
from detectors.data.training import TrainingSet
from detectors.training.loop import SyntheticConfig, SyntheticDetector
from synth.backbones import STRIDES, create_backbone
from synth.errors import SynthError

# m_k / C_k in the official configs (wide_resnet50_2: 256/256, 512/512, 512/1024, 256/2048).
OFFICIAL_AFS_RATIOS = (1.0, 1.0, 0.5, 0.125)
OFFICIAL_RRS_SHARE = 512 / 1536  # r / sum m_k
SIZE_MULTIPLE = 128  # stride 32 x the two downsamplings of G_k


@dataclass
class RealNetConfig(SyntheticConfig):
    afs_ratios: tuple[float, ...] = OFFICIAL_AFS_RATIOS  # share of each layer's channels kept by AFS
    afs_samples: int = 128  # synthetic anomalies scored by AFS (official 64 batches x 16 = 1024)
    rrs_channels: int | None = None  # r; None: a third of sum m_k, rounded to an even number
    hidden_ratio: float = 0.5  # G_k's first-level width / m_k (hide_channels_ratio)
    layers_per_block: int = 1  # residual blocks per UNet level (official num_res_blocks 2)
    disc_width: int = 32  # first discriminator convolution (official 128)
    residual_layers: int = 2  # residual units before it (num_residual_layers)
    pool_size: AtLeastOne = 16  # image score = max of the map average-pooled over pool x pool windows
    batch_size: AtLeastOne = 16


def afs_channels(widths: tuple[int, ...], ratios: tuple[float, ...]) -> tuple[int, ...]:
    """m_k for each layer: ratio x width, at least 1."""
    if len(ratios) != len(widths):
        raise SynthError(f"afs_ratios needs {len(widths)} values (one per layer), got {len(ratios)}")
    return tuple(max(1, min(width, round(ratio * width))) for width, ratio in zip(widths, ratios))


def rrs_channels(selected: tuple[int, ...], requested: int | None) -> int:
    """r: the requested count or a third of the selected channels, even, at most their number."""
    r = requested if requested else 2 * max(1, round(OFFICIAL_RRS_SHARE * sum(selected) / 2))
    if r % 2 or not 0 < r <= sum(selected):
        raise SynthError(f"rrs_channels must be even and in [2, {sum(selected)}], got {r}")
    return r


def afs_losses(anomalous: torch.Tensor, normal: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per-channel AFS loss (C,) of one batch: mean of (minmax([phi(A) - phi(I)]^2) - M)^2 over B x H x W."""
    residual = (anomalous - normal).square().transpose(0, 1).flatten(1)  # (C, B*H*W)
    low, high = residual.amin(1, keepdim=True), residual.amax(1, keepdim=True)
    residual = (residual - low) / (high - low + 1e-4)
    labels = F.interpolate(masks, size=anomalous.shape[-2:], mode="nearest").transpose(0, 1).flatten(1)
    return (residual - labels).square().mean(1)


def reconstruction_unet(channels: int, hidden_ratio: float, layers_per_block: int) -> UNet2DModel:
    """G_k: a UNet from m_k to m_k channels, levels x1, x2, x4, attention on the two coarser ones."""
    base = max(8, 8 * round(hidden_ratio * channels / 8))
    return UNet2DModel(in_channels=channels, out_channels=channels, block_out_channels=(base, 2 * base, 4 * base),
                       down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                       layers_per_block=layers_per_block, norm_num_groups=math.gcd(32, base // 4),
                       attention_head_dim=min(64, 2 * base))  # official: 64 channels per head


class ResidualUnit(nn.Module):
    """x + conv1x1(relu(conv3x3(relu(x)))), no biases (the official Residual)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                                   nn.ReLU(), nn.Conv2d(channels, channels, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ResidualSelection(nn.Module):
    """RRS + discriminator: residual maps of all layers -> 2-class logits at the image size."""

    def __init__(self, in_channels: int, selected: int, width: int, residual_layers: int) -> None:
        super().__init__()
        self.per_mode = selected // 2
        self.rank_norm = nn.BatchNorm2d(in_channels, momentum=0.9, affine=False)
        self.decoder = nn.Sequential(*[ResidualUnit(selected) for _ in range(residual_layers)], nn.ReLU(),
                                     nn.Conv2d(selected, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                                     nn.Conv2d(width, max(8, width // 4), 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(max(8, width // 4), 8, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.Conv2d(8, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1))

    def select(self, residual: torch.Tensor) -> torch.Tensor:
        """Indices (B, r) of the top r/2 channels by global max and the top r/2 by global mean."""
        with torch.no_grad():
            ranked = self.rank_norm(residual).flatten(2)
            return torch.cat([ranked.amax(2).topk(self.per_mode, dim=1).indices,
                              ranked.mean(2).topk(self.per_mode, dim=1).indices], dim=1)

    def forward(self, residuals: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        finest = residuals[0].shape[-2:]
        residual = torch.cat([residuals[0]] + [F.interpolate(r, size=finest, mode="bilinear", align_corners=True)
                                               for r in residuals[1:]], dim=1)
        index = self.select(residual)
        chosen = torch.gather(residual, 1, index[:, :, None, None].expand(-1, -1, *finest))
        decoded = self.decoder(chosen)
        decoded = F.interpolate(decoded, scale_factor=2, mode="bilinear", align_corners=True)
        return F.interpolate(self.head(decoded), size=size, mode="bilinear", align_corners=True)


class ChannelSelection(nn.Module):
    """AFS result: the kept channel indices of each layer, as buffers so they are saved with the model."""

    def __init__(self, counts: tuple[int, ...]) -> None:
        super().__init__()
        for layer, count in enumerate(counts):
            self.register_buffer(f"layer{layer}", torch.arange(count))

    def indices(self) -> list[torch.Tensor]:
        return [buffer for _, buffer in sorted(self.named_buffers())]


@register
class RealNet(SyntheticDetector):
    """Selected features -> per-layer reconstruction -> selected residuals -> segmentation map."""

    name = "realnet"
    size_multiple = SIZE_MULTIPLE
    config_class = RealNetConfig
    config: RealNetConfig
    strides = STRIDES

    def __init__(self, config: RealNetConfig | None = None) -> None:
        super().__init__(config)
        torch.manual_seed(self.config.seed)
        self.backbone = create_backbone(self.config.backbone, self.config.backbone_weights)
        self.backbone.bf16 = self.config.use_bf16()
        widths = tuple(self.backbone.channels[s] for s in self.strides)
        self.counts = afs_channels(widths, tuple(self.config.afs_ratios))
        self.r = rrs_channels(self.counts, self.config.rrs_channels)
        self.afs = ChannelSelection(self.counts)
        self.recon = nn.ModuleList(reconstruction_unet(count, self.config.hidden_ratio, self.config.layers_per_block)
                                   for count in self.counts)
        self.rrs = ResidualSelection(sum(self.counts), self.r, self.config.disc_width, self.config.residual_layers)

    @classmethod
    def paper_config(cls, **overrides) -> RealNetConfig:
        """Official training length and widths (the channel ratios are the official ones already)."""
        return RealNetConfig(**{"epochs": 1000, "lr": 1e-4, "afs_samples": 1024, "layers_per_block": 2,
                                "disc_width": 128, "val_every": 5, "patience": 0, **overrides})

    def networks(self) -> dict[str, nn.Module]:
        return {"afs": self.afs, "recon": self.recon, "rrs": self.rrs}

    def prepare(self, data: TrainingSet, sources: np.ndarray) -> dict[int, torch.Tensor]:
        """Adaptive feature selection on up to ``afs_samples`` synthetic anomalies."""
        self.check_size(data.size)
        count = min(self.config.afs_samples, len(data.anomalous))
        totals = [torch.zeros(self.backbone.channels[s]) for s in self.strides]
        for start in tqdm(range(0, count, self.config.batch_size), desc="realnet AFS", mininterval=2):
            rows = np.arange(start, min(start + self.config.batch_size, count))
            images, masks = data.anomalous_images(rows)
            anomalous = self.backbone(images, self.strides)
            normal = self.backbone(data.normal_images(sources[rows]), self.strides)
            masks = torch.as_tensor(masks[:, None] > 127, dtype=torch.float32)
            for total, a, n in zip(totals, anomalous, normal):
                total += afs_losses(a, n, masks)
        for layer, (total, k) in enumerate(zip(totals, self.counts)):
            getattr(self.afs, f"layer{layer}").copy_(total.topk(k, largest=False).indices.sort().values)
        return dict(zip(self.strides, self.afs.indices()))

    def _residuals(self, features: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        timestep = torch.zeros(())
        recon = [g(f, timestep).sample for g, f in zip(self.recon, features)]
        return recon, [(f - r).square() for f, r in zip(features, recon)]

    def loss(self, features: list[torch.Tensor], targets: list[torch.Tensor], masks: torch.Tensor) -> torch.Tensor:
        recon, residuals = self._residuals(features)
        logits = self.rrs(residuals, masks.shape[-2:])
        segmentation = F.cross_entropy(logits, masks[:, 0].long())
        return segmentation + sum(F.mse_loss(r, t) for r, t in zip(recon, targets))

    def selected_features(self, images: np.ndarray) -> list[torch.Tensor]:
        return [f[:, index] for f, index in zip(self.backbone(images, self.strides), self.afs.indices())]

    def score_features(self, features: list[torch.Tensor], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        _, residuals = self._residuals(features)
        maps = torch.softmax(self.rrs(residuals, size), dim=1)[:, 1:]
        pool = min(self.config.pool_size, *size)
        scores = F.avg_pool2d(maps, pool, stride=1).flatten(1).amax(1)
        return scores.float().numpy(), maps[:, 0].float().numpy()
