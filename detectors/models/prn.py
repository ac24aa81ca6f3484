"""PRN (Zhang et al., CVPR 2023): prototypical residuals, multi-size attention and a U-Net decoder.

The authors published no code; the structure follows the paper and the public re-implementation
xcyao00/PRNet: frozen features of the three finer scales; per scale, K = 10% of the normal images
prototype feature maps from k-means over the flattened maps of the normal images; residual
(f - p)^2 to the nearest prototype map (L2 over the whole map); one multi-scale fusion module
(MSFF) applied to the features and to the residuals, their concatenation per scale through
multi-size self-attention (patch sides H, H/2, H/4, H/8 of the H x H map; depthwise q/k/v projections; a residual
block fusing the four sizes), a second fusion, then a U-Net decoder that starts from the stride-32
features and takes the fused maps as skips, ending in a one-channel segmentation map at the image
size. Loss: smooth L1 on the sigmoid map + 5 x focal loss (alpha 0.5, gamma 4); Adam (lr 1e-4,
weight decay 1e-2). Image score = mean of the 100 highest pixels of the map.

Departures (also in docs/detectors.md):

* Unsupervised setting: PRN trains on normal images + seen real anomalies + simulated ones (about
  half a batch normal, a quarter each); no real anomalies are available here, so the anomalous half
  of each batch is all simulated (synth's ``prn-hea`` / ``prn-hoa`` shards, or any generator).
* Backbone: the default EfficientNet-Lite0 taps (24/40/112/320 channels) instead of a ResNet; the
  fusion's strided convolutions use groups = gcd(in, out) since these widths are not multiples.
* CPU-scaled defaults: 1 multi-size attention layer per scale (official 3), batch 16 (48), lr 1e-3
  (1e-4), training to the plateau of the held-out synthetic score (capped at about 2,000 steps; 700 epochs), the output head convolved at stride 4 and its logits upsampled
  (official: upsampled features convolved at the image size); ``paper_config`` restores them.
* Checkpoints are selected on held-out synthetic rows (the re-implementation validates on the
  test set).
* The network depends on the image size (attention over whole-map patches); it is built on the
  first ``fit`` and rebuilt from the saved prototypes on load. On a non-square H x W map the patches
  are (H/n) x (W/n) for n = 1, 2, 4, 8 (the same n x n grids of patches as on a square map).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from torch import nn

from detectors.base import AtLeastOne, register
from detectors.data.training import TrainingSet
from detectors.training.loop import SyntheticConfig, SyntheticDetector, cache_features
from detectors.training.losses import binary_focal_loss
from synth.backbones import STRIDES, create_backbone
from synth.data.size import ImageSize
from synth.errors import SynthError

RESIDUAL_STRIDES = STRIDES[:3]  # the three finer scales get prototypes, residuals and attention
SIZE_MULTIPLE = 128  # stride 16 x the finest attention patch split (H / 8), for height and width


@dataclass
class PRNConfig(SyntheticConfig):
    prototype_ratio: float = 0.1  # prototypes per scale = this share of the normal images (at least 1)
    attention_layers: int = 1  # multi-size attention layers per scale (official 3)
    focal_weight: float = 5.0  # loss = smooth L1 + focal_weight x focal (re-implementation's weight_lambda)
    focal_alpha: float = 0.5
    focal_gamma: float = 4.0
    weight_decay: float = 1e-2
    top_k: AtLeastOne = 100  # image score = mean of the top_k pixels of the map
    full_resolution_head: bool = False  # official True: the last conv-BN-ReLU + conv run at the image size
    batch_size: AtLeastOne = 16


def conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class UpsampleConv(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, scale: int) -> None:
        super().__init__(nn.Upsample(scale_factor=scale, mode="bilinear", align_corners=True),
                         nn.Conv2d(in_channels, out_channels, 1))


def strided_conv(in_channels: int, out_channels: int, scale: int) -> nn.Conv2d:
    """Grouped convolution that downsamples by ``scale`` (2: kernel 3, 4: kernel 5)."""
    kernel = {2: 3, 4: 5}[scale]
    return nn.Conv2d(in_channels, out_channels, kernel, stride=scale, padding=kernel // 2,
                     groups=math.gcd(in_channels, out_channels))


class MultiScaleFusion(nn.Module):
    """Each of three scales plus the other two resampled to it (upsample + 1x1 conv, or strided conv)."""

    def __init__(self, channels: tuple[int, int, int]) -> None:
        super().__init__()
        self.paths = nn.ModuleList()
        for target in range(3):
            for source in range(3):
                if source == target:
                    continue
                scale = 2 ** abs(source - target)
                self.paths.append(UpsampleConv(channels[source], channels[target], scale) if source > target
                                  else strided_conv(channels[source], channels[target], scale))

    def forward(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        paths = iter(self.paths)
        return [maps[target] + sum(next(paths)(maps[source]) for source in range(3) if source != target)
                for target in range(3)]


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus a 1x1 projection of the input, then ReLU."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*conv_bn_relu(in_channels, channels), nn.Conv2d(channels, channels, 3, padding=1),
                                  nn.BatchNorm2d(channels))
        self.skip = nn.Conv2d(in_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.skip(x))


class DepthwiseProjection(nn.Module):
    """q, k, v = x * w + b per feature: a 1x1 depthwise Conv1d (1 -> 3 channels per group) without
    the grouped-convolution overhead; same uniform(-1, 1) initialisation as that conv (fan-in 1)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(3, features).uniform_(-1, 1))
        self.bias = nn.Parameter(torch.empty(3, features).uniform_(-1, 1))

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Tokens (B, L, D) -> q, k, v, each (B, L, D)."""
        projected = tokens[:, None] * self.weight[None, :, None] + self.bias[None, :, None]
        return projected.unbind(1)


class MultiSizeAttention(nn.Module):
    """Self-attention among non-overlapping patches of the (H, W) map cut into n x n patches for
    n = 1, 2, 4, 8 (sides H, H/2, H/4 and H/8 on a square map), fused by a residual block."""

    def __init__(self, channels: int, shape: tuple[int, int]) -> None:
        super().__init__()
        self.channels = channels
        self.patches = [(shape[0] // 2 ** i, shape[1] // 2 ** i) for i in range(4)]
        # Depthwise q/k/v projections of the flattened patch vectors (the re-implementation's choice: a
        # dense projection of C x p x p channels would be far too large).
        self.projections = nn.ModuleList(DepthwiseProjection(channels * ph * pw) for ph, pw in self.patches)
        self.fuse = ResidualBlock(4 * channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        outputs = []
        for (patch_height, patch_width), projection in zip(self.patches, self.projections):
            rows, cols = height // patch_height, width // patch_width
            tokens = x.reshape(batch, channels, rows, patch_height, cols, patch_width).permute(0, 2, 4, 1, 3, 5)
            tokens = tokens.reshape(batch, rows * cols, -1)  # (B, L, C ph pw)
            q, k, v = projection(tokens)
            attention = torch.softmax(q @ k.transpose(1, 2) / q.shape[-1], dim=-1)  # scale 1/dim (re-implementation)
            out = (attention @ v).reshape(batch, rows, cols, channels, patch_height, patch_width)
            outputs.append(out.permute(0, 3, 1, 4, 2, 5).reshape(batch, channels, height, width))
        return self.fuse(torch.cat(outputs, dim=1))


class Prototypes(nn.Module):
    """K prototype feature maps per scale (buffers) and the residual to the nearest one."""

    def __init__(self, shapes: list[tuple[int, ...]]) -> None:
        super().__init__()
        for scale, shape in enumerate(shapes):
            self.register_buffer(f"scale{scale}", torch.zeros(shape))

    def maps(self) -> list[torch.Tensor]:
        return [buffer for _, buffer in sorted(self.named_buffers())]

    def residuals(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """(f - p)^2 with p the prototype map nearest to f (L2 over the whole map), per scale."""
        out = []
        for feature, prototypes in zip(features, self.maps()):
            nearest = torch.cdist(feature.flatten(1), prototypes.flatten(1)).argmin(1)
            out.append((feature - prototypes[nearest]).square())
        return out


class PRNetwork(nn.Module):
    """Prototypes -> residuals -> fusion -> multi-size attention -> fusion -> U-Net decoder -> logits."""

    def __init__(self, channels: tuple[int, ...], size: ImageSize, prototype_shapes: list[tuple[int, ...]],
                 attention_layers: int, full_resolution_head: bool) -> None:
        super().__init__()
        c0, c1, c2, c3 = channels
        self.prototypes = Prototypes(prototype_shapes)
        self.fuse_inputs = MultiScaleFusion((c0, c1, c2))
        self.attention = nn.ModuleList(
            nn.Sequential(*[MultiSizeAttention(2 * c, (size.height // s, size.width // s))
                            for _ in range(attention_layers)])
            for c, s in zip((c0, c1, c2), RESIDUAL_STRIDES))
        self.fuse_attended = MultiScaleFusion((2 * c0, 2 * c1, 2 * c2))
        self.up = nn.ModuleList(nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
                                              *conv_bn_relu(deep, shallow))
                                for deep, shallow in ((c3, c2), (c2, c1), (c1, c0)))
        self.blocks = nn.ModuleList(nn.Sequential(*conv_bn_relu(3 * c, c), *conv_bn_relu(c, c)) for c in (c2, c1, c0))
        upsample = nn.Upsample(scale_factor=4, mode="bilinear", align_corners=True)
        head = [*conv_bn_relu(c0, c0), nn.Conv2d(c0, 1, 3, padding=1)]
        # Official order: upsample to the image size, then convolve; the CPU-scaled default convolves at
        # stride 4 and upsamples the logits (16x fewer multiply-adds in the costliest layers).
        self.out = nn.Sequential(upsample, *head) if full_resolution_head else nn.Sequential(*head, upsample)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        finer, deepest = features[:3], features[3]
        residuals = self.prototypes.residuals(finer)
        combined = [torch.cat(pair, dim=1) for pair in zip(self.fuse_inputs(finer), self.fuse_inputs(residuals))]
        skips = self.fuse_attended([attention(x) for attention, x in zip(self.attention, combined)])
        x = deepest
        for up, block, skip in zip(self.up, self.blocks, reversed(skips)):
            x = block(torch.cat([skip, up(x)], dim=1))
        return self.out(x)


@register
class PRN(SyntheticDetector):
    """Prototypical residual network: segmentation of anomalies from residuals to normal prototypes."""

    name = "prn"
    size_multiple = SIZE_MULTIPLE
    config_class = PRNConfig
    config: PRNConfig
    strides = STRIDES

    def __init__(self, config: PRNConfig | None = None) -> None:
        super().__init__(config)
        self.backbone = create_backbone(self.config.backbone, self.config.backbone_weights)
        self.backbone.bf16 = self.config.use_bf16()
        self.channels = tuple(self.backbone.channels[s] for s in self.strides)
        self.network: PRNetwork | None = None

    @classmethod
    def paper_config(cls, **overrides) -> PRNConfig:
        """The re-implementation's schedule: 3 attention layers, batch 48, 700 epochs."""
        return PRNConfig(**{"attention_layers": 3, "batch_size": 48, "epochs": 700, "lr": 1e-4,
                            "full_resolution_head": True, "val_every": 10, "patience": 0, **overrides})

    def _build(self, size: ImageSize, prototype_shapes: list[tuple[int, ...]]) -> None:
        self.check_size(size)
        torch.manual_seed(self.config.seed)
        self.network = PRNetwork(self.channels, size, prototype_shapes, self.config.attention_layers,
                                 self.config.full_resolution_head)

    def networks(self) -> dict[str, nn.Module]:
        if self.network is None:
            raise SynthError("PRN has no network before fit() or load()")
        return {"network": self.network}

    def optimizer(self, parameters: list[nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.Adam(parameters, lr=self.config.lr, weight_decay=self.config.weight_decay)

    def prepare(self, data: TrainingSet, sources: np.ndarray) -> None:
        """K-means prototypes of the normal feature maps at the three finer scales."""
        features = cache_features(self.backbone, data.normal, RESIDUAL_STRIDES, self.config.batch_size,
                                  desc="prn prototypes")
        count = max(1, int(len(data.normal) * self.config.prototype_ratio))
        prototypes = []
        for feature in features:
            flat = feature.float().flatten(1).numpy()
            centres = KMeans(n_clusters=count, random_state=self.config.seed, n_init="auto").fit(flat).cluster_centers_
            prototypes.append(torch.as_tensor(centres, dtype=torch.float32).reshape(count, *feature.shape[1:]))
        self._build(data.size, [tuple(p.shape) for p in prototypes])
        for buffer, prototype in zip(self.network.prototypes.maps(), prototypes):
            buffer.copy_(prototype)
        return None

    def loss(self, features: list[torch.Tensor], targets: list[torch.Tensor], masks: torch.Tensor) -> torch.Tensor:
        logits = self.network(features)
        focal = binary_focal_loss(logits, masks, self.config.focal_alpha, self.config.focal_gamma)
        return F.smooth_l1_loss(torch.sigmoid(logits), masks) + self.config.focal_weight * focal

    def score_features(self, features: list[torch.Tensor], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        maps = torch.sigmoid(self.networks()["network"](features)).float()[:, 0]
        top = min(self.config.top_k, maps[0].numel())
        return maps.flatten(1).topk(top, dim=1).values.mean(1).numpy(), maps.numpy()

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        shapes = [tuple(tensors[f"network.prototypes.scale{i}"].shape) for i in range(3)
                  if f"network.prototypes.scale{i}" in tensors]
        if len(shapes) != 3:
            raise SynthError("saved PRN weights hold no prototypes")
        self._build(ImageSize(shapes[0][-2] * RESIDUAL_STRIDES[0], shapes[0][-1] * RESIDUAL_STRIDES[0]), shapes)
        super().load_state_tensors(tensors)
