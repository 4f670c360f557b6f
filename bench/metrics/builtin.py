"""The metrics iseg-bench ships, one registry entry each (their table is in the README).

A NoC or NoF whose threshold lies above the run's early stop (`--stop-at-iou`) is NaN for
every instance: a trajectory that stops at 0.85 cannot say when 0.90 would have been reached
(the official `evaluate_model.py` does not compute those thresholds either).
"""

from __future__ import annotations

import numpy as np

from bench.metrics import official
from bench.metrics.registry import DatasetTrajectories, MetricSpec, register_metric

# A threshold equal to the early stop is measurable (the official grid includes the target).
_STOP_TOLERANCE = 1e-6


def above_early_stop(data: DatasetTrajectories, threshold: float) -> bool:
    return data.stop_at_iou is not None and threshold > data.stop_at_iou + _STOP_TOLERANCE


def _unavailable(data: DatasetTrajectories) -> np.ndarray:
    return np.full(len(data), np.nan)


def noc_values(data: DatasetTrajectories, threshold: float | None) -> np.ndarray:
    if above_early_stop(data, float(threshold)):
        return _unavailable(data)
    thr = official.official_threshold(float(threshold))
    return official.nocs(data.ious, thr, data.max_clicks).astype(np.float64)


def nof_values(data: DatasetTrajectories, threshold: float | None) -> np.ndarray:
    """1 for a failed instance: official NoC == max clicks (also a hit at the last click), or
    under `never-reached` no stored IoU reaches the threshold."""
    if above_early_stop(data, float(threshold)):
        return _unavailable(data)
    thr = official.official_threshold(float(threshold))
    if data.nof_rule == "official":
        return (official.nocs(data.ious, thr, data.max_clicks) == data.max_clicks).astype(float)
    t = np.float32(thr)
    return np.array([not np.any(np.asarray(s, np.float32) >= t) for s in data.ious], float)


def at_click(sequences: tuple[np.ndarray, ...] | None, n: int, k: int) -> np.ndarray:
    """Each instance's value after click k (NaN where its trajectory is shorter, or no
    sequences at all)."""
    if sequences is None:
        return np.full(n, np.nan)
    return np.array([float(s[k - 1]) if len(s) >= k else np.nan for s in sequences])


def iou_at_click(data: DatasetTrajectories, k: float | None) -> np.ndarray:
    return at_click(data.ious, len(data), int(k))


def biou_at_click(data: DatasetTrajectories, k: float | None) -> np.ndarray:
    return at_click(data.bious, len(data), int(k))


NOC = register_metric(
    MetricSpec(
        pattern="NoC@<percent>",
        per_instance=noc_values,
        aggregate="mean",
        lower_is_better=True,
        fmt=".2f",
        group="noc",
        definition="mean number of clicks to reach the IoU threshold (max clicks if never)",
        source="RITM/SimpleClick/SegNext `compute_noc_metric` (isegm/inference/utils.py), "
        "thresholds as `evaluate_model.py` builds them",
    )
)
NOF = register_metric(
    MetricSpec(
        pattern="NoF@<percent>",
        per_instance=nof_values,
        aggregate="count",
        lower_is_better=True,
        fmt="d",
        group="nof",
        definition="instances whose NoC equals max clicks (also a hit exactly at the last "
        "click; `--nof-rule never-reached`: never reached)",
        source="`compute_noc_metric` over_max_list (isegm/inference/utils.py)",
    )
)
MIOU = register_metric(
    MetricSpec(
        pattern="mIoU@<k>",
        per_instance=iou_at_click,
        aggregate="float32-mean",
        lower_is_better=False,
        fmt=".3f",
        group="miou",
        definition="mean over instances of the IoU after click k (float32 mean)",
        source="`evaluate_model.py --print-ious`: np.array(all_ious).mean(axis=0)",
        instance_prefix="IoU@",
    )
)


MBIOU = register_metric(
    MetricSpec(
        pattern="mBIoU@<k>",
        per_instance=biou_at_click,
        aggregate="float32-mean",
        lower_is_better=False,
        fmt=".3f",
        group="mbiou",
        definition="mean over instances of the boundary IoU after click k (band width "
        "max(1, round(0.02 x image diagonal)); ignore pixels dropped after banding)",
        source="Cheng et al., Boundary IoU (CVPR 2021); sam-hq train/utils/misc.py:boundary_iou, "
        "RClicks get_boundary_iou",
        instance_prefix="BIoU@",
        requires="biou",
    )
)


def iou_auc_values(data: DatasetTrajectories, _: float | None) -> np.ndarray:
    """Trapezoid area under the IoU-vs-click curve over clicks 1..K (unit spacing), divided
    by K - 1, K = max clicks: (sum of IoUs - (first + last) / 2) / (K - 1). NaN for an
    instance with fewer than K clicks (early stop, or a click model that ran out)."""
    k = data.max_clicks
    out = np.full(len(data), np.nan)
    for i, seq in enumerate(data.ious):
        if k >= 2 and len(seq) >= k:
            v = np.asarray(seq[:k], dtype=np.float64)
            out[i] = (v.sum() - (v[0] + v[-1]) / 2.0) / (k - 1)
    return out


IOU_AUC = register_metric(
    MetricSpec(
        pattern="IoU-AUC",
        per_instance=iou_auc_values,
        aggregate="mean",
        lower_is_better=False,
        fmt=".3f",
        group="auc",
        definition="mean over instances of the area under the IoU curve over clicks 1..K "
        "(trapezoid rule) divided by K - 1; RClicks' tables call it IoU@20",
        source="RClicks compute_benchmark_metrics.ipynb: np.trapz(ious, axis=1) / 19.",
    )
)
