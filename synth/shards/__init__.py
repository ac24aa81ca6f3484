"""Shards: Parquet rows, the dataset card and the manifest."""

from synth.shards.card import CARD, MANIFEST, read_manifest, write_card, write_json_atomic
from synth.shards.writer import ShardWriter, completed_shards, dataset_features, encode_png

__all__ = ["CARD", "MANIFEST", "ShardWriter", "completed_shards", "dataset_features", "encode_png",
           "read_manifest", "write_card", "write_json_atomic"]
