"""Masks: Perlin noise masks, foreground masks and their intersection."""

from synth.masks.anomaly import anomaly_mask
from synth.masks.foreground import RULES, default_rule, foreground_mask
from synth.masks.perlin import perlin_mask, perlin_noise

__all__ = ["RULES", "anomaly_mask", "default_rule", "foreground_mask", "perlin_mask", "perlin_noise"]
