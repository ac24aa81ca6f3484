"""synth: synthetic anomaly data for industrial visual inspection."""

__version__ = "0.1.0"
