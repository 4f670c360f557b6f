"""NoC, NoF, mIoU@k and IoU@k from stored per-click IoUs (`scripts/evaluate_model.py`,
`isegm/inference/utils.py:compute_noc_metric`; PROTOCOL.md section 4).

Every metric is derived from the full trajectories, never recomputed from a model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

MAX_CLICKS = 20
SUMMARY_THRESHOLDS = (0.80, 0.85, 0.90)
NOF_THRESHOLDS = (0.85, 0.90)


def noc_thresholds(target_iou: float = 0.90) -> np.ndarray:
    """Official thresholds: arange(0.8, min(0.95, target) + 0.001, 0.05).

    They come out slightly above nominal (0.8500000000000001, ...); only their float32
    rounding matters, since they are compared with float32 IoUs.
    """
    return np.arange(0.8, min(0.95, max(target_iou, 0.8)) + 0.001, 0.05)


def official_threshold(nominal: float) -> float:
    """The arange value nearest `nominal` (e.g. 0.85 -> 0.8500000000000001)."""
    thrs = noc_thresholds(1.01)
    return float(thrs[np.argmin(np.abs(thrs - nominal))]) if nominal <= 0.95 else nominal


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


def summarize_dataset(
    trajectories: pd.DataFrame,
    max_clicks: int = MAX_CLICKS,
    thresholds: Sequence[float] = SUMMARY_THRESHOLDS,
    nof_thresholds: Sequence[float] = NOF_THRESHOLDS,
    nof_rule: str = "official",
) -> dict[str, float]:
    _, seqs = iou_matrix(trajectories)
    row: dict[str, float] = {"instances": len(seqs)}
    if not seqs:
        return row
    for t in thresholds:
        per_instance = nocs(seqs, official_threshold(t), max_clicks)
        row[f"NoC@{round(t * 100)}"] = float(np.mean(per_instance))
    if nof_rule not in NOF_RULES:
        raise ValueError(f"unknown NoF rule {nof_rule!r}; known: {', '.join(NOF_RULES)}")
    for t in nof_thresholds:
        thr = official_threshold(t)
        row[f"NoF@{round(t * 100)}"] = (
            nof(nocs(seqs, thr, max_clicks), max_clicks)
            if nof_rule == "official"
            else nof_never_reached(seqs, thr)
        )
    n_min = min(len(s) for s in seqs)
    means = miou_at_k(np.stack([s[:n_min] for s in seqs]))
    for k in range(1, n_min + 1):
        row[f"mIoU@{k}"] = float(means[k - 1])
    if "model_s" in trajectories and "harness_s" in trajectories:
        clicks = len(trajectories)
        # start_s (predictor.start, e.g. a SAM image encoder) is model time spent once per
        # instance; the official SPC divides the whole loop's time by the clicks.
        model = trajectories["model_s"].sum()
        if "start_s" in trajectories:
            model += trajectories["start_s"].sum()
        row["SPC_model_s"] = float(model / clicks)
        row["SPC_harness_s"] = float(trajectories["harness_s"].sum() / clicks)
    return row


def summarize(
    trajectories: pd.DataFrame, max_clicks: int = MAX_CLICKS, nof_rule: str = "official"
) -> pd.DataFrame:
    """One row per dataset (in first-seen order): instances, NoC@80/85/90, NoF@85/90, mIoU@k."""
    rows = {
        name: summarize_dataset(group, max_clicks, nof_rule=nof_rule)
        for name, group in trajectories.groupby("dataset", sort=False)
    }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "dataset"
    if "instances" in frame:
        frame["instances"] = frame["instances"].astype(int)
    for col in frame.columns:
        if col.startswith("NoF@"):
            frame[col] = frame[col].astype(int)
    return frame


def iou_at_k(trajectories: pd.DataFrame, k: int) -> pd.Series:
    """Per-instance IoU after click k (Figure 4 histograms), indexed by (dataset, sample_id)."""
    rows = trajectories[trajectories["click"] == k]
    return rows.set_index(["dataset", "sample_id"])["iou"]
