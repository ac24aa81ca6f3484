"""Segmentation losses of the detectors trained on synthetic anomalies."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def binary_focal_loss(logits: torch.Tensor, masks: torch.Tensor, alpha: float = 0.5,
                      gamma: float = 4.0) -> torch.Tensor:
    """Mean focal loss -alpha_t (1 - p_t)^gamma log p_t of one-logit maps against {0, 1} masks.

    alpha weighs the anomalous class and 1 - alpha the normal one (equal at PRN's alpha = 0.5).
    """
    log_pt = -F.binary_cross_entropy_with_logits(logits, masks, reduction="none")
    alpha_t = alpha * masks + (1 - alpha) * (1 - masks)
    return (-alpha_t * (1 - log_pt.exp()).pow(gamma) * log_pt).mean()


def gradient_l2_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PNI's refinement loss on maps (B, 1, H, W): 1/2 MSE + 1/4 MSE of the x differences + 1/4 MSE of the
    y differences (forward differences with replicate padding, so the last column / row differs by 0)."""

    def differences(maps: torch.Tensor, dim: int) -> torch.Tensor:
        padding = (0, 1, 0, 0) if dim == -1 else (0, 0, 0, 1)
        return torch.diff(F.pad(maps, padding, mode="replicate"), dim=dim)

    return (0.5 * F.mse_loss(prediction, target)
            + 0.25 * F.mse_loss(differences(prediction, -1), differences(target, -1))
            + 0.25 * F.mse_loss(differences(prediction, -2), differences(target, -2)))
