"""PatchCore-refine: PNI's pixel-wise refinement network over PatchCore's anomaly map, trained on synthetic anomalies.

PNI (Bae, Lee, Kim, "PNI: Industrial Anomaly Detection using Position and Neighborhood Information",
ICCV 2023); follows wogur110/PNI_anomaly_detection (pixelwise_refinement.py, refinement/model.py,
refinement/loss.py, refinement/feature_generator.py, refinement/data.py):

* Network: an ImageNet encoder, fine-tuned, with early fusion: its first block runs on the image and a
  second copy of that block on the anomaly map repeated to 3 channels; the two early feature maps are
  averaged and the rest of the encoder runs to stride 32. Decoder without skip connections: a 1x1 conv
  to ``decoder_scale`` channels, 5 blocks (bilinear x2, 1x1 conv, ReLU, 3x3 conv, ReLU) halving the
  channels each time, a 1x1 conv to 1 channel.
* The network predicts a residual: refined = map + net(image, map).
* Loss: 1/2 L2(refined, mask) + 1/4 L2 of the x differences + 1/4 L2 of the y differences.
* Adam, lr 1e-4, batch 8; training augmentation: horizontal flip, rotation +-5 degrees, colour jitter 0.4.
* Final map = weight_refine x refined + (1 - weight_refine) x map (0.1); image score = the map's maximum.

Departures (also in docs/detectors/patchcore-refine.md):

* Backbone: the project's EfficientNet-Lite0 instead of DenseNet161. The fused block is Lite0's stage
  to stride 4 (stem + blocks 0-2, 24 channels), the analogue of DenseNet's stem (conv0 ... pool0,
  stride 4); ``decoder_scale`` 256 for Lite0's 320-channel last stage (PNI: 768 for DenseNet's 2208),
  so the decoder ends with 8 channels (PNI 24). Batch norms of Lite0 are folded into its convolutions.
* Maps: the project's PatchCore (its defaults). Training maps are cross-fitted (two halves of the
  normal images, each scored by the other half's PatchCore; ``detectors.training.crossfit``), scoring
  uses one PatchCore fitted on all normal images; maps are normalised by normal-map statistics
  (``MapScale``: 0 at the median normal pixel, 1 at the 0.99 quantile of normal map maxima, clipped
  above at 4). PNI trains on its own ensemble's maps scaled to [0, 1].
* The last 1x1 convolution starts at zero, so the untrained network returns PatchCore's map, and the
  held-out synthetic rows are validated before the first step too: the kept checkpoint is never worse
  than PatchCore there (PNI: default initialisation, no checkpoint selection).
* CPU schedule: at most ``max_steps`` (500) optimiser steps, validation every ``val_every`` (50) steps,
  early stopping (``patience`` 4); PNI trains 55,000 iterations. Images keep their size (PNI: 320 x 320).
* Augmentation via albumentations; the rotation reflects the border (PNI fills the image white and the
  maps with their mean); PNI's PCA lighting noise (0.1) is left out.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Annotated

import albumentations as A
import cv2
import numpy as np
import torch
from annotated_types import Ge, Le
from torch import nn
from tqdm import tqdm

from detectors.base import AtLeastOne, Detector, NonNegativeFloat, Share, register
from detectors.data.training import TrainingSet
from detectors.features import DEFAULT_STRIDES
from detectors.models.patchcore import PatchCore, PatchCoreConfig
from detectors.training.crossfit import FOLDS, MapScale, cross_fitted_maps, split_folds
from detectors.training.loop import ValidationConfig, anomaly_sources, split_rows, validation_score
from detectors.training.losses import gradient_l2_loss
from detectors.training.stopping import EarlyStopping
from synth.backbones import Backbone
from synth.data.size import ImageSize
from synth.errors import SynthError

UPSAMPLINGS = 5  # decoder blocks, each x2: stride 32 back to the image size
ROTATION = 5.0  # degrees, either way
JITTER = 0.4  # brightness, contrast and saturation
PAPER_STEPS = 55_000  # the reference evaluates its checkpoint after 55,000 iterations


@dataclass
class RefineConfig(ValidationConfig):
    lr: NonNegativeFloat = 1e-4
    max_steps: AtLeastOne = 500  # optimiser steps at most (training stops earlier on a validation plateau)
    val_every: AtLeastOne = 50  # optimiser steps between validations on held-out synthetic rows
    anomaly_fraction: Share = 0.5  # share of anomalies in a batch (the rest: normal images, target all 0)
    weight_refine: Annotated[float, Ge(0), Le(1)] = 0.1  # final map = w x refined + (1 - w) x PatchCore's map
    decoder_scale: Annotated[int, Ge(2 ** UPSAMPLINGS)] = 256  # decoder width after the first 1x1 conv
    augment: bool = True  # flip, rotation, colour jitter of the training batches
    patchcore_strides: tuple[int, ...] = DEFAULT_STRIDES  # the feature taps of the PatchCore whose maps are refined


class UpBlock(nn.Sequential):
    """Bilinear x2 (corners aligned), 1x1 conv, ReLU, 3x3 conv, ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
                         nn.Conv2d(in_channels, out_channels, 1), nn.ReLU(),
                         nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.ReLU())


class RefinementNet(nn.Module):
    """(image, map) -> residual map: early-fused encoder (a trainable copy of the backbone) and a plain decoder."""

    def __init__(self, backbone: Backbone, decoder_scale: int) -> None:
        super().__init__()
        stages = copy.deepcopy(backbone.stages).requires_grad_(True)
        self.image_block, self.map_block = stages[0], copy.deepcopy(stages[0])
        self.encoder = nn.Sequential(*stages[1:])
        self.register_buffer("mean", backbone.mean.clone(), persistent=False)
        self.register_buffer("std", backbone.std.clone(), persistent=False)
        layers: list[nn.Module] = [nn.Conv2d(backbone.channels[32], decoder_scale, 1)]
        for level in range(UPSAMPLINGS):
            layers.append(UpBlock(decoder_scale >> level, decoder_scale >> (level + 1)))
        head = nn.Conv2d(decoder_scale >> UPSAMPLINGS, 1, 1)
        nn.init.zeros_(head.weight)  # departure: the untrained network leaves the map as it is
        nn.init.zeros_(head.bias)
        self.decoder = nn.Sequential(*layers, head)

    @property
    def head(self) -> nn.Conv2d:
        """The last 1x1 convolution (to one channel)."""
        return self.decoder[-1]

    def forward(self, images: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """Residuals (B, H, W) for RGB uint8 images (B, H, W, 3) and their normalised maps (B, H, W)."""
        x = (images.permute(0, 3, 1, 2).float() / 255.0 - self.mean) / self.std
        fused = (self.image_block(x) + self.map_block(maps[:, None].float().expand(-1, 3, -1, -1))) / 2
        return self.decoder(self.encoder(fused))[:, 0]


def augmentation(seed: int) -> A.Compose:
    """PNI's train-time augmentation: flip and rotation of image, map and mask; colour jitter of the image."""
    return A.Compose([A.HorizontalFlip(p=0.5),
                      A.Rotate(limit=ROTATION, border_mode=cv2.BORDER_REFLECT_101, p=1.0),
                      A.ColorJitter(brightness=JITTER, contrast=JITTER, saturation=JITTER, hue=0.0, p=1.0)],
                     additional_targets={"map": "mask"}, mask_interpolation=cv2.INTER_LINEAR, seed=seed)


@dataclass
class Samples:
    """Images (B, H, W, 3) uint8, their normalised PatchCore maps (B, H, W) and targets (B, H, W), float32."""

    images: np.ndarray
    maps: np.ndarray
    targets: np.ndarray

    def augmented(self, transform: A.Compose) -> "Samples":
        out = [transform(image=i, map=m, mask=t) for i, m, t in zip(self.images, self.maps, self.targets)]
        return Samples(np.stack([o["image"] for o in out]), np.stack([o["map"] for o in out]),
                       np.stack([o["mask"] for o in out]))


def held_out_samples(data: TrainingSet, held: np.ndarray, sources: np.ndarray, normal_maps: np.ndarray,
                     anomaly_maps: np.ndarray) -> Samples:
    """The held-out anomalies (targets: their masks) followed by their normal sources (targets: all 0)."""
    masks = np.stack([data.anomalous[i][1] for i in held]) > 127
    return Samples(np.stack([data.anomalous[i][0] for i in held] + [data.normal[sources[i]] for i in held]),
                   np.concatenate([anomaly_maps[held], normal_maps[sources[held]]]),
                   np.concatenate([masks, np.zeros_like(masks)]).astype(np.float32))


@register
class PatchCoreRefine(Detector):
    """PatchCore's map corrected by a network that sees the image and the map (PNI's refinement)."""

    name = "patchcore-refine"
    uses_anomalies = True
    size_multiple = 2 ** UPSAMPLINGS
    min_normal_images = FOLDS  # cross-fitting splits them into two halves
    config_class = RefineConfig
    config: RefineConfig

    def __init__(self, config: RefineConfig | None = None) -> None:
        super().__init__(config)
        self.patchcore = self._new_patchcore()
        self.network: RefinementNet | None = None
        self.scale: MapScale | None = None

    @classmethod
    def paper_config(cls, **overrides) -> RefineConfig:
        """The reference's schedule: 55,000 steps of batch 8 at lr 1e-4, no early stop."""
        return RefineConfig(**{"max_steps": PAPER_STEPS, "patience": 0, "lr": 1e-4, "batch_size": 8,
                               "weight_refine": 0.1, **overrides})

    def _new_patchcore(self) -> PatchCore:
        """A PatchCore with its defaults on this detector's backbone, precision, seed and ``patchcore_strides``."""
        c = self.config
        return PatchCore(PatchCoreConfig(backbone=c.backbone, backbone_weights=c.backbone_weights, batch_size=c.batch_size,
                                         seed=c.seed, precision=c.precision, strides=c.patchcore_strides))

    def _build(self) -> RefinementNet:
        self.network = RefinementNet(self.patchcore.backbone, self.config.decoder_scale)
        return self.network

    def fit(self, data: TrainingSet) -> None:
        config = self.config
        self.check_size(data.size)
        sources = anomaly_sources(self.name, data)
        rng = np.random.default_rng(config.seed)
        crossfit = cross_fitted_maps(data, sources, split_folds(len(data.normal), rng), self._new_patchcore)
        self.patchcore.fit(TrainingSet(data.normal))
        self.scale = MapScale.of_normal(crossfit.normal)
        normal_maps, anomaly_maps = self.scale(crossfit.normal), self.scale(crossfit.anomalous)
        kept, held = split_rows(len(data.anomalous), config.val_fraction, rng)
        torch.manual_seed(config.seed)
        self._build()
        train = TrainingSet(data.normal, [data.anomalous[i] for i in kept], config.anomaly_fraction)
        held_out = held_out_samples(data, held, sources, normal_maps, anomaly_maps) if len(held) else None
        self._train(train, normal_maps, anomaly_maps[kept], held_out, rng)
        self.fitted = True

    def _train(self, train: TrainingSet, normal_maps: np.ndarray, anomaly_maps: np.ndarray,
               held_out: Samples | None, rng: np.random.Generator) -> None:
        config, network = self.config, self.network
        optimizer = torch.optim.Adam(network.parameters(), lr=config.lr)
        stopping = EarlyStopping(config.patience, config.min_delta, config.smoothing)
        transform = augmentation(config.seed) if config.augment else None
        best_state, step = None, 0

        def validate() -> None:
            nonlocal best_state
            network.eval()
            score = validation_score(*self._refine_batches(held_out.images, held_out.maps), held_out.targets > 0.5)
            if stopping.update(step, score):
                best_state = {k: v.clone() for k, v in network.state_dict().items()}
            tqdm.write(f"{self.name} step {step}: synthetic validation {score:.4f} (best {stopping.best:.4f})")
            network.train()

        if held_out is not None:
            validate()  # step 0: PatchCore's map alone (the head starts at zero)
        network.train()
        with tqdm(total=config.max_steps, desc=self.name, mininterval=2) as bar:
            while step < config.max_steps and not stopping.plateaued:
                for batch in train.batches(config.batch_size, rng):
                    images, masks = train.anomalous_images(batch.anomalous)
                    samples = Samples(np.concatenate([train.normal_images(batch.normal), images]),
                                      np.concatenate([normal_maps[batch.normal], anomaly_maps[batch.anomalous]]),
                                      np.concatenate([np.zeros((len(batch.normal), *train.size.shape), np.float32),
                                                      (masks > 127).astype(np.float32)]))
                    loss = self._step(samples.augmented(transform) if transform else samples, optimizer)
                    step += 1
                    bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                    bar.update()
                    if held_out is not None and (step % config.val_every == 0 or step == config.max_steps):
                        validate()
                    if step >= config.max_steps or stopping.plateaued:
                        break
        self.training = stopping.summary(step, config.max_steps) | {"map_scale": [self.scale.low, self.scale.high]}
        if best_state is not None:
            network.load_state_dict(best_state)
        network.eval()

    def _step(self, samples: Samples, optimizer: torch.optim.Optimizer) -> float:
        maps = torch.as_tensor(samples.maps)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.config.use_bf16()):
            residual = self.network(torch.as_tensor(samples.images), maps)
        loss = gradient_l2_loss((maps + residual.float())[:, None], torch.as_tensor(samples.targets)[:, None])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    def _refine_batches(self, images: np.ndarray, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        step = self.config.batch_size
        results = [self._refine(images[start:start + step], maps[start:start + step])
                   for start in range(0, len(images), step)]
        return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])

    @torch.no_grad()
    def _refine(self, images: np.ndarray, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image scores and final maps: the normalised map plus weight_refine x the network's residual."""
        maps = torch.as_tensor(maps)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.config.use_bf16()):
            residual = self.network(torch.as_tensor(images), maps)
        final = maps + self.config.weight_refine * residual.float()
        return final.flatten(1).amax(1).numpy(), final.numpy()

    def _score(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.check_size(ImageSize.of(images[0]))
        return self._refine(images, self.scale(self.patchcore._score(images)[1]))

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"patchcore.memory_bank": self.patchcore.memory_bank,
                "map_scale": torch.tensor([self.scale.low, self.scale.high], dtype=torch.float64),
                **{f"network.{key}": value for key, value in self.network.state_dict().items()}}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.patchcore.load_state_tensors({"memory_bank": tensors["patchcore.memory_bank"]})
        low, high = tensors["map_scale"].tolist()
        self.scale = MapScale(low, high)
        state = {key[len("network."):]: value for key, value in tensors.items() if key.startswith("network.")}
        try:
            self._build().load_state_dict(state)
        except RuntimeError as error:
            raise SynthError(f"saved {self.name} weights do not fit this config: "
                             f"{str(error).splitlines()[0]}") from None
        self.network.eval()
