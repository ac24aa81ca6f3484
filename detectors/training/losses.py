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
