"""Locally aware patch features (PatchCore, SimpleNet) and patch scores -> anomaly maps.

Following patchcore-inspection (whose feature code SimpleNet reuses): each tapped feature map is
aggregated over a 3x3 neighbourhood, the coarser maps are resized bilinearly to the finest tapped
grid, each layer's vector is adaptively average-pooled to a common length (so layers weigh the
same whatever their width) and the stacked vectors are adaptively average-pooled to the target
dimension. Departure: the 3x3 aggregation is an average pool (stride 1, padding 1, as anomalib)
instead of the official unfold + pooling over the flattened C x 3 x 3 patch.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from tqdm import tqdm

from synth.backbones import Backbone, check_strides

DEFAULT_STRIDES = (8, 16)  # the two middle scales (layer2 and layer3 of a ResNet)


def default_embed_dim(backbone: Backbone, strides: Sequence[int], cap: int) -> int:
    """Twice the widest tap (each layer then keeps its full width through both poolings), at most ``cap``.

    The papers use 1024 (PatchCore) and 1536 (SimpleNet) for WideResNet-50 layers 2+3; for the
    narrow EfficientNet-Lite0 taps (40 + 112 channels) that would only repeat values.
    """
    check_strides(strides)
    return min(cap, 2 * max(backbone.channels[s] for s in strides))


def patch_features(backbone: Backbone, images: np.ndarray, strides: Sequence[int], dim: int) -> torch.Tensor:
    """Patch embeddings (B, h, w, dim) on the grid of the finest stride for RGB uint8 images (B, H, W, 3)."""
    return aggregate_patches(backbone(images, strides), dim)


def aggregate_patches(features: Sequence[torch.Tensor], dim: int) -> torch.Tensor:
    """Patch embeddings (B, h, w, dim) on the grid of the first (finest) of the tapped maps (B, C_k, h_k, w_k)."""
    maps = [F.avg_pool2d(feature, 3, stride=1, padding=1) for feature in features]
    height, width = maps[0].shape[-2:]
    maps = [maps[0]] + [F.interpolate(m, size=(height, width), mode="bilinear", align_corners=False)
                        for m in maps[1:]]
    per_layer = [F.adaptive_avg_pool1d(m.permute(0, 2, 3, 1).reshape(-1, 1, m.shape[1]), dim) for m in maps]
    stacked = torch.cat(per_layer, dim=-1)  # (B*h*w, 1, layers*dim)
    return F.adaptive_avg_pool1d(stacked, dim).reshape(len(features[0]), height, width, dim)


def embed_images(embed: Callable[[np.ndarray], torch.Tensor], images: Sequence[np.ndarray], batch_size: int,
                 desc: str = "features") -> torch.Tensor:
    """``embed`` applied to ``images`` (RGB uint8 arrays) in batches, results concatenated along dim 0."""
    return torch.cat([embed(np.stack(images[start:start + batch_size]))
                      for start in tqdm(range(0, len(images), batch_size), desc=desc, mininterval=2)])


def anomaly_maps(patch_scores: torch.Tensor, size: tuple[int, int], sigma: float = 4.0) -> np.ndarray:
    """Patch scores (B, h, w) -> maps (B, H, W): bilinear upsampling then a Gaussian blur (sigma in pixels)."""
    upsampled = F.interpolate(patch_scores[:, None].float(), size=size, mode="bilinear", align_corners=False)
    maps = upsampled[:, 0].cpu().numpy()
    return np.stack([gaussian_filter(m, sigma=sigma) for m in maps]) if sigma > 0 else maps
