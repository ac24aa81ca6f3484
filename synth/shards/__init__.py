"""Shards: Parquet rows, the dataset card and the manifest."""

from synth.shards.card import (CARD, DATASET_FORMAT, MANIFEST, dataset_files, expected_rows, features_entry,
                               manifest_features, read_manifest, verify_dataset, write_card, write_json_atomic)
from synth.shards.writer import ShardWriter, completed_shards, dataset_features, encode_png, temporary_files

__all__ = ["CARD", "DATASET_FORMAT", "MANIFEST", "ShardWriter", "completed_shards", "dataset_features", "dataset_files",
           "encode_png", "expected_rows", "features_entry", "manifest_features", "read_manifest", "temporary_files",
           "verify_dataset", "write_card", "write_json_atomic"]
