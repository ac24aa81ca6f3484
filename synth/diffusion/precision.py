"""Which precision the diffusion UNet runs fastest in on a device (training and SDAS sampling)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

# CPU features under which oneDNN runs bf16 convolutions and matrix products natively.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where it does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def fast_bf16(device: torch.device | str) -> bool:
    """True where bf16 autocast is faster than fp32: a CUDA GPU with bf16, or a CPU with bf16 units.

    Decided by flags, not by a timing probe, so the same machine always makes the same choice (and
    so the same bytes).
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)
    return False


def precision_name(bf16: bool) -> str:
    return "bf16" if bf16 else "fp32"
