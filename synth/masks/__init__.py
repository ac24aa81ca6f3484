"""Masks: Perlin noise masks, foreground masks, their intersection, and masks from SDAS twins."""

from synth.masks.aligned import aligned_mask
from synth.masks.anomaly import anomaly_mask
from synth.masks.foreground import RULES, check_rule, default_rule, foreground_mask, parse_rule
from synth.masks.perlin import perlin_mask, perlin_noise

__all__ = ["RULES", "aligned_mask", "anomaly_mask", "check_rule", "default_rule", "foreground_mask", "parse_rule", "perlin_mask",
           "perlin_noise"]
