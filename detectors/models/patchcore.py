"""PatchCore (Roth et al., CVPR 2022): a coreset memory bank of locally aware patch features.

Follows amazon-science/patchcore-inspection: two middle feature scales, approximate greedy coreset
on a 128-d random projection started from the mean distance to 10 random points, nearest-neighbour
patch scores, image score = max patch score, map upsampled and smoothed with a Gaussian (sigma 4).
Departures (also in docs/detectors/patchcore.md): distances are Euclidean (the official FAISS
IndexFlatL2 returns squared ones), the random projection is Gaussian (the official one is an
untrained nn.Linear), the embedding width follows ``default_embed_dim`` for narrow backbones, and
the default coreset selection (``greedy-fast``) runs the greedy k-center on the projected features
rounded to int8 and applies up to 32 picks per pass over them; ``greedy-fp32`` gives the official
selection's picks (several per pass) and ``greedy-exact`` is the official loop (one per pass).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from detectors.base import AtLeastOne, Detector, DetectorConfig, Ratio, register
from detectors.data.training import TrainingSet
from detectors.features import DEFAULT_STRIDES, anomaly_maps, default_embed_dim, embed_images, patch_features
from synth.backbones import create_backbone
from synth.errors import SynthError

OFFICIAL_EMBED_DIM = 1024  # pretrain_embed_dimension = target_embed_dimension in the paper's runs
QUERY_CHUNK = 4096  # rows of the query/bank distance matrix computed at once
CORESET_METHODS = ("greedy-fast", "greedy-fp32", "greedy-exact")  # see select_coreset


@dataclass
class PatchCoreConfig(DetectorConfig):
    strides: tuple[int, ...] = DEFAULT_STRIDES
    embed_dim: AtLeastOne | None = None  # None: default_embed_dim(backbone, strides, 1024)
    coreset_ratio: Ratio = 0.1  # fraction of patch features kept; 1.0 keeps them all
    coreset_method: str = "greedy-fast"  # greedy-fast | greedy-fp32 | greedy-exact (see select_coreset)
    projection_dim: AtLeastOne | None = 128  # random projection used only to pick the coreset; None: none
    start_points: AtLeastOne = 10  # random points whose mean distance starts the greedy selection
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


def project(features: torch.Tensor, projection_dim: int | None, generator: torch.Generator | None) -> torch.Tensor:
    """The rows in float32, randomly projected to ``projection_dim`` columns when they are wider (Gaussian, 1/sqrt(d))."""
    features = features.float()
    if projection_dim and features.shape[1] > projection_dim:
        projection = torch.randn(features.shape[1], projection_dim, generator=generator) / projection_dim ** 0.5
        features = features @ projection
    return features


def _start_distances(features: torch.Tensor, norms: torch.Tensor, start_points: int,
                     generator: torch.Generator | None) -> torch.Tensor:
    """Squared mean distance of every row to a few random rows, which start the selection (not selected themselves)."""
    starts = torch.randperm(len(features), generator=generator)[:min(start_points, len(features))]
    return squared_distances(features, features[starts], norms[starts]).sqrt().mean(1).square()


def _check_size(features: torch.Tensor, size: int) -> None:
    if not 0 < size <= len(features):
        raise SynthError(f"coreset size must be in [1, {len(features)}], got {size}")


def greedy_coreset(features: torch.Tensor, size: int, projection_dim: int | None = 128, start_points: int = 10,
                   generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
    """Indices of ``size`` rows picked by approximate greedy k-center selection (farthest point first).

    The former selection (``coreset_method="greedy-exact"``), kept for comparison: one pick per pass,
    each pass one float32 matrix-vector product over all (projected) rows.
    """
    return _greedy_exact(features, size, projection_dim, start_points, generator, progress).indices


@dataclass
class Coreset:
    """A coreset selection: the picked rows, their coverage radius and the passes over the rows it took."""

    indices: torch.Tensor  # (size,) int64 row indices, in pick order
    radius: float  # largest distance of any row to its nearest pick, float32 on the projected rows
    passes: int  # passes over the whole (projected) feature matrix
    method: str


def _greedy_exact(features: torch.Tensor, size: int, projection_dim: int | None, start_points: int,
                  generator: torch.Generator | None, progress: bool) -> Coreset:
    _check_size(features, size)
    features = project(features, projection_dim, generator)
    norms = features.square().sum(1)
    min_distance = _start_distances(features, norms, start_points, generator)
    start = min_distance.clone()
    selected = torch.empty(size, dtype=torch.long)
    for step in tqdm(range(size), desc="coreset", disable=not progress, mininterval=2):
        index = int(torch.argmax(min_distance))
        selected[step] = index
        distance = torch.addmv(norms, features, features[index], alpha=-2).add_(norms[index])
        torch.minimum(min_distance, distance, out=min_distance)
        min_distance[index] = -1  # never picked again, even among duplicate rows (the former loop could)
    return Coreset(selected, _radius_from_tracked(features, selected, min_distance, start), size, "greedy-exact")


def _radius_from_tracked(features: torch.Tensor, selected: torch.Tensor, min_distance: torch.Tensor,
                         start: torch.Tensor) -> float:
    """Coverage radius from float32 tracked squared distances; rows never closer to a pick than their start
    value (so their tracked value is not a distance to a pick) are measured directly."""
    radius = float(min_distance.clamp(min=0).max()) ** 0.5
    untouched = torch.nonzero(min_distance >= start).flatten()
    if len(untouched):
        radius = max(radius, float(nearest(features[untouched], features[selected])[0].max()))
    return radius


# Several picks per pass (greedy-fast, greedy-fp32). The pool holds the rows with the largest minimum
# distances; within it the greedy order is followed exactly, updating the pool members' distances by the
# new picks, as long as the best pool value is at least the largest value outside the pool (an upper bound
# for every other row, since distances only shrink). Then one pass over all rows applies the accepted picks.
POOL = 64  # rows considered per pass
PICKS_PER_PASS = 32  # at most this many picks share one pass (int8 products are fastest up to 32 columns)
ROW_BLOCK = 8192  # rows per block within a pass (the block's products stay in cache)
RADIUS_BLOCK = 1024  # rows whose nearest pick is searched at once when the radius is certified


def select_coreset(features: torch.Tensor, size: int, method: str = "greedy-fast", projection_dim: int | None = 128,
                   start_points: int = 10, generator: torch.Generator | None = None,
                   progress: bool = False) -> Coreset:
    """``size`` rows by greedy k-center selection on randomly projected rows, with the coverage radius.

    ``greedy-exact``: the former loop (one float32 pass per pick). ``greedy-fp32``: the same selection
    (same picks up to ties), several picks per pass. ``greedy-fast`` (default): several picks per pass
    on the projected rows rounded to int8 (one scale for all), whose distances are exact integers; it
    greedily covers the rounded rows, and its radius is certified on the unrounded float32 ones.
    """
    if method not in CORESET_METHODS:
        raise SynthError(f"unknown coreset method {method!r}; choose from {', '.join(CORESET_METHODS)}")
    if method == "greedy-exact":
        return _greedy_exact(features, size, projection_dim, start_points, generator, progress)
    _check_size(features, size)
    features = project(features, projection_dim, generator)
    norms = features.square().sum(1)
    start = _start_distances(features, norms, start_points, generator)
    if method == "greedy-fast":
        scale = float(features.abs().max()) / 127 or 1.0
        rows = torch.round(features / scale).to(torch.int8)
        row_norms = rows.int().square().sum(1).float()
        products = _int8_products
        min_distance = start / scale ** 2
    else:
        scale, rows, row_norms, products = 1.0, features, norms, _float_products
        min_distance = start.clone()
    assigned = torch.full((len(rows),), -1, dtype=torch.long)  # the pick each row's min_distance comes from
    selected = torch.empty(size, dtype=torch.long)
    count = passes = 0
    with tqdm(total=size, desc="coreset", disable=not progress, mininterval=2) as bar:
        while count < size:
            picks = _pool_picks(rows, row_norms, min_distance, products, min(PICKS_PER_PASS, size - count))
            selected[count:count + len(picks)] = picks
            min_distance[picks] = -1  # never picked again, even among duplicate rows
            _apply_picks(rows, row_norms, picks, min_distance, assigned, products)
            count += len(picks)
            passes += 1
            bar.update(len(picks))
    radius = _certified_radius(features, selected, assigned)
    return Coreset(selected, radius, passes, method)


def _int8_products(rows: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    return torch._int_mm(rows, centres.T)  # exact int32 dot products


def _float_products(rows: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    return rows @ centres.T


def _pool_picks(rows: torch.Tensor, row_norms: torch.Tensor, min_distance: torch.Tensor, products,
                limit: int) -> torch.Tensor:
    """The next picks of the greedy order that one pass can apply (at least one, at most ``limit``)."""
    values, pool = min_distance.topk(min(POOL + 1, len(min_distance)))
    bound = float(values[POOL]) if len(values) > POOL else -float("inf")
    values, pool = values[:POOL].double().numpy().copy(), pool[:POOL]
    members, member_norms = rows[pool], row_norms[pool]
    between = (member_norms[:, None] + member_norms[None] - 2 * products(members, members)).double().numpy()
    accepted = []
    while len(accepted) < limit:
        best = int(values.argmax())
        if values[best] < 0 or (accepted and values[best] < bound):  # all picked, or a row outside may be farther
            break
        accepted.append(best)
        np.minimum(values, between[best], out=values)
        values[best] = -np.inf
    return pool[accepted]


def _apply_picks(rows: torch.Tensor, row_norms: torch.Tensor, picks: torch.Tensor, min_distance: torch.Tensor,
                 assigned: torch.Tensor, products) -> None:
    """min_distance = min(min_distance, squared distance to each pick), block by block, recording the pick."""
    centres = rows[picks]
    centre_norms = row_norms[picks]
    for start in range(0, len(rows), ROW_BLOCK):
        block = slice(start, start + ROW_BLOCK)
        # |x - c|^2 = |x|^2 + (|c|^2 - 2 x.c); from int8 rows all terms are integers, exact in float32 up to 260 columns.
        partial = torch.sub(centre_norms, products(rows[block], centres).float(), alpha=2)
        current = min_distance[block]
        closer = torch.nonzero(partial.amin(1).add_(row_norms[block]) < current).flatten()
        if len(closer):
            distance, nearest_pick = partial[closer].min(1)
            current[closer] = distance.add_(row_norms[block][closer])
            assigned[block][closer] = picks[nearest_pick]


def _certified_radius(features: torch.Tensor, selected: torch.Tensor, assigned: torch.Tensor) -> float:
    """The exact coverage radius in float32: rows are searched in full, largest upper bound first, until
    no remaining row's upper bound (its distance to the pick it was assigned to) exceeds the radius found."""
    bound = torch.full((len(features),), float("inf"))
    has_pick = assigned >= 0
    bound[has_pick] = torch.linalg.vector_norm(features[has_pick] - features[assigned[has_pick]], dim=1)
    bound[selected] = 0
    order = torch.argsort(bound, descending=True)
    radius = 0.0
    for start in range(0, len(order), RADIUS_BLOCK):
        if float(bound[order[start]]) <= radius:
            break
        block = order[start:start + RADIUS_BLOCK]
        radius = max(radius, float(nearest(features[block], features[selected])[0].max()))
    return radius


@register
class PatchCore(Detector):
    """Memory bank of nominal patch features; a patch's score is its distance to the nearest entry."""

    name = "patchcore"
    config_class = PatchCoreConfig
    config: PatchCoreConfig

    def __init__(self, config: PatchCoreConfig | None = None) -> None:
        super().__init__(config)
        self.backbone = create_backbone(self.config.backbone, self.config.backbone_weights)
        self.backbone.bf16 = self.config.use_bf16()
        self.dim = self.config.embed_dim or default_embed_dim(self.backbone, self.config.strides, OFFICIAL_EMBED_DIM)
        self.memory_bank = torch.zeros(0, self.dim)
        self.coreset: Coreset | None = None  # the last fit's selection (indices, coverage radius)
        if self.config.coreset_method not in CORESET_METHODS:
            raise SynthError(f"unknown coreset_method {self.config.coreset_method!r}; "
                             f"choose from {', '.join(CORESET_METHODS)}")

    @classmethod
    def paper_config(cls, **overrides) -> PatchCoreConfig:
        """The official selection's picks (greedy-fp32: the official loop's order, several picks per pass)."""
        return PatchCoreConfig(**{"coreset_method": "greedy-fp32", **overrides})

    def embed(self, images: np.ndarray) -> torch.Tensor:
        return patch_features(self.backbone, images, self.config.strides, self.dim)

    def fit(self, data: TrainingSet) -> None:
        torch.manual_seed(self.config.seed)
        features = embed_images(self.embed, data.normal, self.config.batch_size, "patchcore features")
        features = features.reshape(-1, self.dim)
        if self.config.coreset_ratio < 1.0:
            generator = torch.Generator().manual_seed(self.config.seed)
            size = max(1, int(len(features) * self.config.coreset_ratio))
            self.coreset = select_coreset(features, size, self.config.coreset_method, self.config.projection_dim,
                                          self.config.start_points, generator, progress=True)
            tqdm.write(f"coreset: {size} of {len(features)} patches ({self.coreset.method}, "
                       f"{self.coreset.passes} passes), coverage radius {self.coreset.radius:.4g} "
                       f"on the {self.config.projection_dim or self.dim}-d projection", file=sys.stderr)
            features = features[self.coreset.indices]
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
