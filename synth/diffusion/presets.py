"""Named UNet configurations (presets) for the DDPM behind SDAS."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from synth.errors import SynthError

OUT_CHANNELS = 6  # 3 for the noise ε and 3 for the variance interpolation v (learned range)


@dataclass(frozen=True)
class Preset:
    """A UNet shape plus its default batch size and learning rate."""

    name: str
    size: int
    block_out_channels: tuple[int, ...]
    layers_per_block: int
    attention_resolutions: tuple[int, ...]  # feature-map sides (pixels) that get self-attention
    attention_head_dim: int
    norm_num_groups: int = 32
    batch_size: int = 16
    lr: float = 1e-4

    def unet_kwargs(self, num_classes: int | None = None) -> dict[str, Any]:
        """Keyword arguments for ``diffusers.UNet2DModel`` (class embedding when num_classes > 1)."""
        sides = [self.size // 2 ** level for level in range(len(self.block_out_channels))]
        attn = [side in self.attention_resolutions for side in sides]
        kwargs: dict[str, Any] = dict(
            sample_size=self.size,
            in_channels=3,
            out_channels=OUT_CHANNELS,
            block_out_channels=self.block_out_channels,
            layers_per_block=self.layers_per_block,
            down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn),
            up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)),
            # guided-diffusion's resblock_updown=True and use_scale_shift_norm=True
            downsample_type="resnet",
            upsample_type="resnet",
            resnet_time_scale_shift="scale_shift",
            attention_head_dim=self.attention_head_dim,
            norm_num_groups=self.norm_num_groups,
            dropout=0.0,
        )
        if num_classes and num_classes > 1:
            kwargs["num_class_embeds"] = num_classes
        return kwargs


PRESETS: dict[str, Preset] = {
    # 64x64 demo model for CPU. Departure: lr 2e-4 (guided-diffusion uses 1e-4) learns faster in a
    # short run, and 16 norm groups because level 0 has only 32 channels; see docs/diffusion.md.
    "tiny": Preset("tiny", 64, (32, 64, 128, 128), 1, (16, 8), 64, norm_num_groups=16, batch_size=16,
                   lr=2e-4),
    # For the CPU headline: tiny with 3/4 of its channels and self-attention at 8x8 only (1.9x its
    # UNet calls per CPU-second, measured); 48-channel heads as 96 does not split into 64. See docs/diffusion.md.
    "compact": Preset("compact", 64, (24, 48, 96, 96), 1, (8,), 48, norm_num_groups=8, batch_size=16,
                      lr=2e-4),
    "small": Preset("small", 128, (128, 128, 256, 256, 512), 2, (32, 16, 8), 64, batch_size=16),
    # RealNet's configuration (guided-diffusion 256x256: num_channels 256, channel_mult (1,1,2,2,4,4),
    # num_res_blocks 2, attention at 32,16,8, num_head_channels 64).
    "paper": Preset("paper", 256, (256, 256, 512, 512, 1024, 1024), 2, (32, 16, 8), 64, batch_size=8),
    # Test-only: 16x16 images and a few channels, so that unit tests train in seconds.
    "micro": Preset("micro", 16, (16, 32), 1, (8,), 8, norm_num_groups=8, batch_size=8, lr=1e-3),
}


def size_multiple(block_out_channels: Sequence[int]) -> int:
    """What every side of an image the UNet takes must be a multiple of: each level but the last halves it."""
    return 2 ** (len(block_out_channels) - 1)


def get_preset(name: str) -> Preset:
    """The preset called ``name``; SynthError if there is none."""
    if name not in PRESETS:
        raise SynthError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]
