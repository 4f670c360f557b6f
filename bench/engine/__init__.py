"""The evaluation engine: per-instance protocol state, the batched loop, shards, the run."""
