"""The official NoC / NoF / mIoU@k arithmetic on stored per-click IoUs
(`scripts/evaluate_model.py`, `isegm/inference/utils.py:compute_noc_metric` of ClickSEG and
SegNext; PROTOCOL.md section 4). The registry (`bench.metrics.registry`) builds its entries
from these functions; nothing here knows about tables or runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

MAX_CLICKS = 20


def noc_thresholds(target_iou: float = 0.90) -> np.ndarray:
    """Official thresholds: arange(0.8, min(0.95, target) + 0.001, 0.05).

    They come out slightly above nominal (0.8500000000000001, ...); only their float32
    rounding matters, since they are compared with float32 IoUs.
    """
    return np.arange(0.8, min(0.95, max(target_iou, 0.8)) + 0.001, 0.05)


def official_threshold(nominal: float) -> float:
    """The official arange value for `nominal` (0.85 -> 0.8500000000000001, 0.95 ->
    0.9500000000000001, as SegNext's `evaluate_model.py` builds them); a threshold off that
    grid (0.75, 0.99) is used as given."""
    thrs = noc_thresholds(1.01)
    nearest = thrs[np.argmin(np.abs(thrs - nominal))]
    return float(nearest) if abs(nearest - nominal) < 1e-9 else float(nominal)


def noc(ious: np.ndarray, thr: float, max_clicks: int = MAX_CLICKS) -> int:
    """Clicks to reach `thr`, or `max_clicks` if never reached (also for shorter sequences).

    Compared in float32, as numpy does for a float32 array against a Python float.
    """
    hits = np.flatnonzero(np.asarray(ious, dtype=np.float32) >= np.float32(thr))
    return int(hits[0]) + 1 if hits.size else max_clicks


def nocs(iou_matrix: Sequence[np.ndarray], thr: float, max_clicks: int = MAX_CLICKS) -> np.ndarray:
    return np.array([noc(s, thr, max_clicks) for s in iou_matrix], dtype=np.int64)


NOF_RULES = ("official", "never-reached")
"""`official`: NoC == max_clicks, so a hit exactly at the last click is a failure too (a
quirk of both RITM and SimpleClick, the default). `never-reached`: the threshold is never
reached within the stored clicks (the fix, as a named option)."""


def nof(noc_values: np.ndarray, max_clicks: int = MAX_CLICKS) -> int:
    """Failures as the official code counts them (rule `official`)."""
    return int(np.count_nonzero(np.asarray(noc_values) == max_clicks))


def nof_never_reached(iou_seqs: Sequence[np.ndarray], thr: float) -> int:
    """Failures under rule `never-reached`: no stored IoU reaches `thr` (float32 compare)."""
    t = np.float32(thr)
    return sum(not np.any(np.asarray(s, np.float32) >= t) for s in iou_seqs)


def miou_at_k(iou_matrix: np.ndarray) -> np.ndarray:
    """Element-wise float32 mean over instances (`np.array(all_ious).mean(axis=0)`)."""
    return np.asarray(iou_matrix, dtype=np.float32).mean(axis=0)


def iou_matrix(trajectories: pd.DataFrame) -> tuple[list[str], list[np.ndarray]]:
    """(sample ids, IoU sequences) of one dataset, in stored (official) order."""
    ids, seqs = [], []
    for sid, group in trajectories.groupby("sample_id", sort=False):
        ids.append(str(sid))
        seqs.append(group.sort_values("click")["iou"].to_numpy(np.float32))
    return ids, seqs


def iou_at_k(trajectories: pd.DataFrame, k: int) -> pd.Series:
    """Per-instance IoU after click k (Figure 4 histograms), indexed by (dataset, sample_id)."""
    rows = trajectories[trajectories["click"] == k]
    return rows.set_index(["dataset", "sample_id"])["iou"]
