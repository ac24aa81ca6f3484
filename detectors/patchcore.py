"""PatchCore (Roth et al., CVPR 2022): a coreset memory bank of locally aware patch features.

Follows amazon-science/patchcore-inspection: two middle feature scales, approximate greedy coreset
on a 128-d random projection started from the mean distance to 10 random points, nearest-neighbour
patch scores, image score = max patch score, map upsampled and smoothed with a Gaussian (sigma 4).
Departures (also in docs/detectors.md): distances are Euclidean (the official FAISS IndexFlatL2
returns squared ones), the random projection is Gaussian (the official one is an untrained
nn.Linear), and the embedding width follows ``default_embed_dim`` for narrow backbones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from synth.backbones import create_backbone
from detectors.base import Detector, DetectorConfig, register
from detectors.data import TrainingSet
from detectors.features import DEFAULT_STRIDES, anomaly_maps, default_embed_dim, embed_images, patch_features
from synth.errors import SynthError

OFFICIAL_EMBED_DIM = 1024  # pretrain_embed_dimension = target_embed_dimension in the paper's runs
QUERY_CHUNK = 4096  # rows of the query/bank distance matrix computed at once


@dataclass
class PatchCoreConfig(DetectorConfig):
    strides: tuple[int, ...] = DEFAULT_STRIDES
    embed_dim: int | None = None  # None: default_embed_dim(backbone, strides, 1024)
    coreset_ratio: float = 0.1  # fraction of patch features kept; 1.0 keeps them all
    projection_dim: int | None = 128  # random projection used only to pick the coreset; None: none
    start_points: int = 10  # random points whose mean distance starts the greedy selection
    reweight_neighbours: int = 0  # b > 0: the paper's image-score re-weighting over b neighbours
    sigma: float = 4.0  # Gaussian smoothing of the anomaly map, in pixels


def squared_distances(queries: torch.Tensor, bank: torch.Tensor, bank_norms: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (Q, M) via the expansion |q|^2 - 2 q.b + |b|^2, clamped at 0."""
    products = torch.addmm(bank_norms[None], queries, bank.T, alpha=-2)
    return products.add_(queries.square().sum(1, keepdim=True)).clamp_(min=0)


def nearest(queries: torch.Tensor, bank: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distances (Q, k) and indices (Q, k) of the k nearest bank rows, ascending."""
    bank_norms = bank.square().sum(1)
    distances, indices = [], []
    for start in range(0, len(queries), QUERY_CHUNK):
        found = squared_distances(queries[start:start + QUERY_CHUNK], bank, bank_norms).topk(k, dim=1, largest=False)
        distances.append(found.values.sqrt())
        indices.append(found.indices)
    return torch.cat(distances), torch.cat(indices)


def greedy_coreset(features: torch.Tensor, size: int, projection_dim: int | None = 128, start_points: int = 10,
                   generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
    """Indices of ``size`` rows picked by approximate greedy k-center selection (farthest point first).

    The minimum distance of every row to the selected set is updated in place after each pick, so a
    step costs one matrix-vector product over the (projected) features and no N x N matrix is built.
    """
    if not 0 < size <= len(features):
        raise SynthError(f"coreset size must be in [1, {len(features)}], got {size}")
    features = features.float()
    if projection_dim and features.shape[1] > projection_dim:
        projection = torch.randn(features.shape[1], projection_dim, generator=generator) / projection_dim ** 0.5
        features = features @ projection
    norms = features.square().sum(1)
    starts = torch.randperm(len(features), generator=generator)[:min(start_points, len(features))]
    # The official sampler starts from the mean distance to a few random points (not selected themselves).
    min_distance = squared_distances(features, features[starts], norms[starts]).sqrt().mean(1).square()
    selected = torch.empty(size, dtype=torch.long)
    for step in tqdm(range(size), desc="coreset", disable=not progress, mininterval=2):
        index = int(torch.argmax(min_distance))
        selected[step] = index
        distance = torch.addmv(norms, features, features[index], alpha=-2).add_(norms[index])
        torch.minimum(min_distance, distance, out=min_distance)
    return selected


@register
class PatchCore(Detector):
    """Memory bank of nominal patch features; a patch's score is its distance to the nearest entry."""

    name = "patchcore"
    config_class = PatchCoreConfig
    config: PatchCoreConfig

    def __init__(self, config: PatchCoreConfig | None = None) -> None:
        super().__init__(config)
        self.backbone = create_backbone(self.config.backbone, self.config.backbone_weights)
        self.dim = self.config.embed_dim or default_embed_dim(self.backbone, self.config.strides, OFFICIAL_EMBED_DIM)
        self.memory_bank = torch.zeros(0, self.dim)

    def embed(self, images: np.ndarray) -> torch.Tensor:
        return patch_features(self.backbone, images, self.config.strides, self.dim)

    def fit(self, data: TrainingSet) -> None:
        torch.manual_seed(self.config.seed)
        features = embed_images(self.embed, data.normal, self.config.batch_size, "patchcore features")
        features = features.reshape(-1, self.dim)
        if self.config.coreset_ratio < 1.0:
            generator = torch.Generator().manual_seed(self.config.seed)
            size = max(1, int(len(features) * self.config.coreset_ratio))
            features = features[greedy_coreset(features, size, self.config.projection_dim,
                                               self.config.start_points, generator, progress=True)]
        self.memory_bank = features.contiguous()
        self.fitted = True

    def _score(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        embeddings = self.embed(images)
        batch, height, width, _ = embeddings.shape
        queries = embeddings.reshape(-1, self.dim)
        distances, indices = nearest(queries, self.memory_bank)
        patch_scores = distances[:, 0].reshape(batch, -1)
        image_scores = patch_scores.max(dim=1).values
        if self.config.reweight_neighbours > 0:
            image_scores = self._reweight(queries.reshape(batch, -1, self.dim), patch_scores,
                                          indices[:, 0].reshape(batch, -1))
        return image_scores.numpy(), anomaly_maps(patch_scores.reshape(batch, height, width),
                                                  images.shape[1:3], self.config.sigma)

    def _reweight(self, queries: torch.Tensor, patch_scores: torch.Tensor, nearest_index: torch.Tensor) -> torch.Tensor:
        """The paper's Eq. 7: scale s* by 1 - softmax weight of m* among the b bank neighbours of its match."""
        top = patch_scores.argmax(dim=1)
        rows = torch.arange(len(top))
        test_patch, score = queries[rows, top], patch_scores[rows, top]
        match = self.memory_bank[nearest_index[rows, top]]
        b = min(self.config.reweight_neighbours, len(self.memory_bank))
        _, support = nearest(match, self.memory_bank, k=b)  # the match itself comes first
        distances = torch.linalg.vector_norm(test_patch[:, None] - self.memory_bank[support], dim=-1)
        return (1 - torch.softmax(distances, dim=1)[:, 0]) * score

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"memory_bank": self.memory_bank}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        bank = tensors["memory_bank"]
        if bank.ndim != 2 or bank.shape[1] != self.dim:
            raise SynthError(f"memory bank of shape {tuple(bank.shape)} does not match embedding width {self.dim}")
        self.memory_bank = bank
