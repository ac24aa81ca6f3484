"""Detectors trained with synthetic anomalies (RealNet, PRN): shared data handling and training loop.

* ``normal_counterparts``: the normal image each synthetic anomaly was made from. Generators change
  pixels inside the mask only, so the source is the normal image that equals the anomaly outside
  its (dilated) mask; matching small thumbnails needs neither the shard's ``source`` column nor the
  shard size to equal the detector's.
* ``SyntheticDetector.fit``: holds out synthetic rows (``val_fraction``) for checkpoint selection
  (never the real test set), caches the frozen backbone features once, held-out rows included (no
  augmentation is used, as in both reference setups), and runs the epochs; each subclass supplies its
  network, its loss and its scoring from features.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch
from tqdm import tqdm

from detectors.base import (AtLeastOne, Detector, DetectorConfig, NonNegativeFloat, NonNegativeInt, Share,
                            require_anomalies)
from detectors.data.training import TrainingSet
from detectors.evaluation.metrics import image_auroc, pixel_ap
from detectors.training.stopping import EarlyStopping
from synth.backbones import Backbone
from synth.errors import SynthError

log = logging.getLogger("detectors")

THUMBNAIL = 32  # side of the thumbnails compared when matching anomalies to their normal image
MAX_MEAN_DIFFERENCE = 8.0  # grey levels; a larger difference outside the mask means "not from this category"
MAX_VALIDATION_ROWS = 64
DEFAULT_MAX_STEPS = 2000  # default cap in optimiser steps (the benchmark matrix's), as whole epochs
DEFAULT_VALIDATION_STEPS = 50  # default interval between validations in optimiser steps, as whole epochs


@dataclass
class ValidationConfig(DetectorConfig):
    """Checkpoint selection and early stopping on held-out synthetic rows."""

    val_fraction: Share = 0.1  # synthetic rows held out for checkpoint selection (at most 64)
    patience: NonNegativeInt = 4  # stop after this many validations without improvement (0: run the whole budget)
    min_delta: NonNegativeFloat = 0.0  # a validation improves on the best when it beats it by more than this
    smoothing: AtLeastOne = 1  # the plateau rule reads the mean of this many latest validations (1: each one)


@dataclass
class SyntheticConfig(ValidationConfig):
    """Settings of the shared training loop."""

    # The cap; one epoch: every normal image once, each batch topped up with anomalies. None: the whole epochs
    # that cover DEFAULT_MAX_STEPS optimiser steps (``epoch_schedule``), so the cap does not depend on the category.
    epochs: AtLeastOne | None = None
    lr: NonNegativeFloat = 1e-3  # CPU-scaled for the shorter schedule; both references use 1e-4 (paper_config)
    anomaly_fraction: Share = 0.5  # share of anomalies in a batch (both references: half the batch)
    val_every: AtLeastOne | None = None  # epochs between validations; None: the whole number nearest 50 steps


@dataclass
class FeatureCache:
    """Frozen backbone features (float16, per tap) of the normal images and of the synthetic anomalies."""

    normal: list[torch.Tensor]
    anomalous: list[torch.Tensor]

    def batch(self, normal: Sequence[int], anomalous: Sequence[int]) -> list[torch.Tensor]:
        """Features of normal images ``normal`` followed by anomalies ``anomalous``, as float32."""
        rows = torch.as_tensor(normal, dtype=torch.long), torch.as_tensor(anomalous, dtype=torch.long)
        return [torch.cat([n[rows[0]], a[rows[1]]]).float() for n, a in zip(self.normal, self.anomalous)]


def _thumbnail(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, (THUMBNAIL, THUMBNAIL), interpolation=cv2.INTER_AREA).astype(np.float32)


def normal_counterparts(data: TrainingSet) -> np.ndarray:
    """Index into ``data.normal`` of the image each anomaly was generated from (equal outside its mask)."""
    normal = np.stack([_thumbnail(image) for image in data.normal])  # (N, t, t, 3)
    sources = np.empty(len(data.anomalous), dtype=np.int64)
    kernel = np.ones((5, 5), np.uint8)
    for index, (image, mask) in enumerate(data.anomalous):
        # Dilate so that thumbnail pixels touched by the anomaly are left out of the comparison.
        outside = cv2.resize(cv2.dilate(mask, kernel, iterations=2), (THUMBNAIL, THUMBNAIL),
                             interpolation=cv2.INTER_AREA) == 0
        if not outside.any():
            outside[:] = True
        difference = np.abs(normal - _thumbnail(image)[None])[:, outside].mean(axis=(1, 2))
        best = int(np.argmin(difference))
        if difference[best] > MAX_MEAN_DIFFERENCE:
            raise SynthError(f"synthetic anomaly {index} matches no normal image of this category outside its "
                             f"mask (mean difference {difference[best]:.1f}); were the shards made from it?")
        sources[index] = best
    return sources


def anomaly_sources(name: str, data: TrainingSet) -> np.ndarray:
    """``normal_counterparts`` of ``data``; SynthError when it holds no synthetic anomaly (``name`` needs them)."""
    require_anomalies(name, data)
    return normal_counterparts(data)


def epoch_schedule(steps_per_epoch: int, max_steps: int = DEFAULT_MAX_STEPS,
                   validation_steps: int = DEFAULT_VALIDATION_STEPS) -> tuple[int, int]:
    """(epochs, val_every): the whole epochs that cover ``max_steps`` optimiser steps, and the whole number
    of epochs (at least 1) nearest ``validation_steps`` steps."""
    return math.ceil(max_steps / steps_per_epoch), max(1, round(validation_steps / steps_per_epoch))


def split_rows(count: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) row indices; ``fraction`` of the rows (at most 64) are held out, none if too few."""
    held = min(MAX_VALIDATION_ROWS, int(round(count * fraction)))
    if held < 2 or held >= count:
        if count and fraction > 0:
            log.warning("%d synthetic anomalies are too few to hold out validation rows at val_fraction %g "
                        "(%g x %d rounds to %d; 2 are needed): no early stopping, training runs to its step cap",
                        count, fraction, fraction, count, held)
        return np.arange(count), np.zeros(0, np.int64)
    order = rng.permutation(count)
    return np.sort(order[held:]), np.sort(order[:held])


def validation_score(scores: np.ndarray, maps: np.ndarray, masks: np.ndarray) -> float:
    """Mean of image AUROC and pixel AP; images whose mask is empty count as normal."""
    labels = masks.reshape(len(masks), -1).any(axis=1)
    return 0.5 * (image_auroc(labels, scores) + pixel_ap(masks, maps))


def validate_held_out(detector: Detector, data: TrainingSet, held: np.ndarray, sources: np.ndarray) -> float:
    """``validation_score`` of ``detector`` (in eval mode) on held-out anomalies and their normal sources."""
    images = np.stack([data.anomalous[i][0] for i in held] + [data.normal[sources[i]] for i in held])
    masks = np.stack([data.anomalous[i][1] for i in held] + [np.zeros_like(data.anomalous[i][1]) for i in held])
    step = detector.config.batch_size
    with torch.no_grad():
        results = [detector._score(images[start:start + step]) for start in range(0, len(images), step)]
    return validation_score(np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results]), masks)


def validate_cached(detector: "SyntheticDetector", features: list[torch.Tensor], masks: np.ndarray) -> float:
    """``validation_score`` of ``detector`` (in eval mode) on cached held-out features and their masks, in the
    training's precision (bf16 autocast where the training uses it)."""
    step = detector.config.batch_size
    size = masks.shape[1:3]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=detector.config.use_bf16()):
        results = [detector.score_features([f[start:start + step].float() for f in features], size)
                   for start in range(0, len(masks), step)]
    return validation_score(np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results]), masks)


def cache_features(backbone: Backbone, images: Sequence[np.ndarray], strides: Sequence[int], batch_size: int,
                   select: dict[int, torch.Tensor] | None = None, desc: str = "features") -> list[torch.Tensor]:
    """Backbone features (float16) at ``strides`` of ``images``, optionally only the channels ``select[stride]``."""
    parts: list[list[torch.Tensor]] = [[] for _ in strides]
    for start in tqdm(range(0, len(images), batch_size), desc=desc, mininterval=2):
        features = backbone(np.stack(images[start:start + batch_size]), strides)
        for part, stride, feature in zip(parts, strides, features):
            part.append((feature[:, select[stride]] if select else feature).half())
    return [torch.cat(part) for part in parts]


class SyntheticDetector(Detector):
    """A detector whose network learns from normal images and masked synthetic anomalies.

    Subclasses build their network in ``__init__``, list its modules in ``networks``, and implement
    ``prepare`` (anything computed once from the data: channel selection, prototypes), ``loss``
    (one batch) and ``_score``.
    """

    uses_anomalies = True
    default_max_steps: int = DEFAULT_MAX_STEPS  # the default cap (``epochs`` None), in optimiser steps
    config: SyntheticConfig
    strides: tuple[int, ...]
    backbone: Backbone

    @abstractmethod
    def networks(self) -> dict[str, torch.nn.Module]:
        """The trainable modules by name (their state dicts are saved under ``name.``)."""

    @abstractmethod
    def prepare(self, data: TrainingSet, sources: np.ndarray) -> dict[int, torch.Tensor] | None:
        """One-off work before training; may return the channels to cache per stride."""

    @abstractmethod
    def loss(self, features: list[torch.Tensor], targets: list[torch.Tensor], masks: torch.Tensor) -> torch.Tensor:
        """Loss of a batch: features of the (possibly anomalous) inputs, of their normal sources, masks (B, 1, H, W)."""

    @abstractmethod
    def score_features(self, features: list[torch.Tensor], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Image scores and anomaly maps (``size``) from backbone features (the channels ``prepare`` kept)."""

    def start_epoch(self, cache: FeatureCache) -> None:
        """Called before every training epoch with the cached features (GLASS recomputes its centre here)."""

    def selected_features(self, images: np.ndarray) -> list[torch.Tensor]:
        """The backbone features the networks read (all channels unless a subclass selects some)."""
        return self.backbone(images, self.strides)

    def _score(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.score_features(self.selected_features(images), images.shape[1:3])

    def fit(self, data: TrainingSet) -> None:
        config = self.config
        sources = anomaly_sources(self.name, data)
        torch.manual_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        kept, held = split_rows(len(data.anomalous), config.val_fraction, rng)
        select = self.prepare(dataclasses.replace(data, anomalous=[data.anomalous[i] for i in kept]), sources[kept])
        cache = FeatureCache(
            cache_features(self.backbone, data.normal, self.strides, config.batch_size, select, "normal features"),
            cache_features(self.backbone, [data.anomalous[i][0] for i in kept], self.strides, config.batch_size,
                           select, "anomaly features"))
        # Held-out anomalies and their normal sources, validated on cached features like the training batches.
        held_features = [torch.cat([a, n[torch.as_tensor(sources[held], dtype=torch.long)]]) for a, n in zip(
            cache_features(self.backbone, [data.anomalous[i][0] for i in held], self.strides, config.batch_size,
                           select, "held-out features"), cache.normal)] if len(held) else []
        held_masks = np.stack([data.anomalous[i][1] for i in held] * 2) if len(held) else None
        if held_masks is not None:
            held_masks[len(held):] = 0
        train = TrainingSet(data.normal, [data.anomalous[i] for i in kept], config.anomaly_fraction)
        parameters = [p for module in self.networks().values() for p in module.parameters()]
        optimizer = self.optimizer(parameters)
        stopping = EarlyStopping(config.patience, config.min_delta, config.smoothing)
        best_state, step = None, 0
        bf16 = config.use_bf16()
        steps_per_epoch = train.num_batches(config.batch_size)
        default_epochs, default_val_every = epoch_schedule(steps_per_epoch, self.default_max_steps)
        epochs, val_every = config.epochs or default_epochs, config.val_every or default_val_every
        max_steps = epochs * steps_per_epoch
        with tqdm(total=max_steps, desc=self.name, mininterval=2) as bar:
            for epoch in range(epochs):
                self.start_epoch(cache)
                self._train_mode(True)
                for batch in train.batches(config.batch_size, rng):
                    features = cache.batch(batch.normal, batch.anomalous)
                    targets = cache.batch(np.concatenate([batch.normal, sources[kept][batch.anomalous]]), [])
                    masks = np.concatenate([np.zeros((len(batch.normal), *data.size.shape), np.uint8),
                                            train.anomalous_images(batch.anomalous)[1]])
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        loss = self.loss(features, targets, torch.as_tensor(masks[:, None] > 127, dtype=torch.float32))
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    step += 1
                    bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
                    bar.update()
                last = epoch + 1 == epochs
                if len(held) and ((epoch + 1) % val_every == 0 or last):
                    self._train_mode(False)
                    score = validate_cached(self, held_features, held_masks)
                    if stopping.update(step, score):
                        best_state = {k: v.clone() for k, v in self.state_tensors().items()}
                    bar.write(f"{self.name} step {step}: synthetic validation {score:.4f} (best {stopping.best:.4f})")
                    if stopping.plateaued:
                        break
        self.training = stopping.summary(step, max_steps)
        if best_state is not None:
            self.load_state_tensors(best_state)
        self._train_mode(False)
        self.fitted = True

    def optimizer(self, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.Adam(parameters, lr=self.config.lr)

    def _train_mode(self, mode: bool) -> None:
        for module in self.networks().values():
            module.train(mode)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {f"{name}.{key}": value for name, module in self.networks().items()
                for key, value in module.state_dict().items()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, module in self.networks().items():
            prefix = f"{name}."
            state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            try:
                module.load_state_dict(state)
            except RuntimeError as error:
                raise SynthError(f"saved {self.name} weights do not fit this config: "
                                 f"{str(error).splitlines()[0]}") from None
        self._train_mode(False)
