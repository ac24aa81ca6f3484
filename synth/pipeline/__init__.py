"""From a plan or recipe to shards: the generation driver, its processes, per-sample seeds, options and provenance."""
