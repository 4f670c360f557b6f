"""Metrics of a run, derived from its stored trajectories (never from a model).

`get_metric("NoC@95")` gives a registry entry bound to its number; `per_instance` and
`summarize` give per-instance values and per-dataset figures for any list of names
(`bench.metrics.evaluate`); `official` holds the official NoC / NoF / mIoU arithmetic.
Third-party metrics register through the entry-point group `iseg_bench.metrics`.
"""

from __future__ import annotations

from bench.metrics import builtin as _builtin  # noqa: F401  (registers the shipped metrics)
from bench.metrics.evaluate import (
    SIZE_BUCKETS,
    DatasetEvaluation,
    dataset_trajectories,
    default_metric_names,
    evaluate,
    per_instance,
    size_bucket,
    size_index,
    split_by_size,
    summarize,
    summary_frame,
    timing_row,
)
from bench.metrics.official import (
    MAX_CLICKS,
    NOF_RULES,
    iou_at_k,
    iou_matrix,
    miou_at_k,
    noc,
    noc_thresholds,
    nocs,
    nof,
    nof_never_reached,
    official_threshold,
)
from bench.metrics.registry import (
    ENTRY_POINT_GROUP,
    DatasetTrajectories,
    Metric,
    MetricError,
    MetricSpec,
    get_metric,
    known_patterns,
    parse_metrics,
    register_metric,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "MAX_CLICKS",
    "NOF_RULES",
    "SIZE_BUCKETS",
    "DatasetEvaluation",
    "DatasetTrajectories",
    "Metric",
    "MetricError",
    "MetricSpec",
    "dataset_trajectories",
    "default_metric_names",
    "evaluate",
    "get_metric",
    "iou_at_k",
    "iou_matrix",
    "known_patterns",
    "miou_at_k",
    "noc",
    "noc_thresholds",
    "nocs",
    "nof",
    "nof_never_reached",
    "official_threshold",
    "parse_metrics",
    "per_instance",
    "register_metric",
    "size_bucket",
    "size_index",
    "split_by_size",
    "summarize",
    "summary_frame",
    "timing_row",
]
