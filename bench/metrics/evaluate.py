"""Trajectories -> per-instance values -> dataset figures, once (COCOeval's evaluate /
accumulate / summarize). `bench summary`, `compare`, the report's tables and the exports all
read their numbers from here; `bench.stats` adds the CIs from the same per-instance values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.metrics import official
from bench.metrics.registry import DatasetTrajectories, Metric, MetricError, parse_metrics

DEFAULT_NOC = (80, 85, 90, 95)
DEFAULT_NOF = (85, 90, 95)
SIZE_BUCKETS = (("small", 0, 32**2), ("medium", 32**2, 96**2), ("large", 96**2, np.inf))
"""COCO's area ranges in GT pixels: < 32², 32²–96², > 96² (pycocotools `areaRng`)."""


@dataclass(frozen=True)
class DatasetEvaluation:
    """One dataset's per-instance values (rows: sample ids; columns: the metrics' instance
    columns) and its figures (`summary`: metric name -> aggregate, NaN = unavailable)."""

    data: DatasetTrajectories
    metrics: tuple[Metric, ...]
    values: pd.DataFrame
    summary: dict[str, float]


def dataset_trajectories(
    trajectories: pd.DataFrame,
    max_clicks: int = official.MAX_CLICKS,
    nof_rule: str = "official",
    stop_at_iou: float | None = None,
) -> list[DatasetTrajectories]:
    """The raw state of each dataset, in first-seen order; instances in stored order."""
    if nof_rule not in official.NOF_RULES:
        raise MetricError(f"unknown NoF rule {nof_rule!r}; known: {', '.join(official.NOF_RULES)}")
    out = []
    for dataset, group in trajectories.groupby("dataset", sort=False):
        codes, ids = pd.factorize(group["sample_id"], sort=False)
        order = np.lexsort((group["click"].to_numpy(), codes))
        bounds = np.cumsum(np.bincount(codes, minlength=len(ids)))[:-1]

        bious = None
        if "biou" in group and not group["biou"].isna().all():
            bious = _split(group["biou"], order, bounds)
        areas = None
        if "gt_area" in group and not group["gt_area"].isna().any():
            first = group.drop_duplicates("sample_id")
            areas = first["gt_area"].to_numpy(np.float64)
        out.append(
            DatasetTrajectories(
                dataset=str(dataset),
                ids=tuple(str(i) for i in ids),
                ious=_split(group["iou"], order, bounds),
                bious=bious,
                areas=areas,
                max_clicks=int(max_clicks),
                nof_rule=nof_rule,
                stop_at_iou=None if stop_at_iou is None else float(stop_at_iou),
            )
        )
    return out


def _split(column: pd.Series, order: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(np.split(column.to_numpy()[order], bounds))


def default_metric_names(data: DatasetTrajectories) -> list[str]:
    """NoC@80/85/90/95, NoF@85/90/95, mIoU@k and mBIoU@k for every click all instances
    reached, IoU-AUC."""
    from bench.metrics.registry import known_patterns

    names = [f"NoC@{t}" for t in DEFAULT_NOC] + [f"NoF@{t}" for t in DEFAULT_NOF]
    names += [f"mIoU@{k}" for k in range(1, data.shortest + 1)]
    patterns = set(known_patterns())
    if "mBIoU@<k>" in patterns:  # unavailable (NaN) in a run made before `biou`
        names += [f"mBIoU@{k}" for k in range(1, data.shortest + 1)]
    if "IoU-AUC" in patterns:
        names.append("IoU-AUC")
    return names


def evaluate_dataset(data: DatasetTrajectories, metrics: Sequence[Metric]) -> DatasetEvaluation:
    columns = {m.instance_column: m.values(data) for m in metrics}
    values = pd.DataFrame(columns, index=pd.Index(data.ids, name="sample_id"))
    summary = {m.name: m.aggregate(columns[m.instance_column]) for m in metrics}
    return DatasetEvaluation(data, tuple(metrics), values, summary)


def evaluate(
    trajectories: pd.DataFrame,
    names: str | Iterable[str] | None = None,
    max_clicks: int = official.MAX_CLICKS,
    nof_rule: str = "official",
    stop_at_iou: float | None = None,
    extra: Iterable[str] = (),
) -> list[DatasetEvaluation]:
    """Every dataset's per-instance values and figures for `names` (None: the default set,
    followed by the names in `extra`)."""
    chosen = None if names is None else parse_metrics(names)
    extra = list(extra)
    out = []
    for data in dataset_trajectories(trajectories, max_clicks, nof_rule, stop_at_iou):
        if not len(data):
            continue
        metrics = chosen
        if metrics is None:
            metrics = parse_metrics(default_metric_names(data) + extra)
        out.append(evaluate_dataset(data, metrics))
    return out


def per_instance(
    trajectories: pd.DataFrame,
    names: str | Iterable[str] | None = None,
    max_clicks: int = official.MAX_CLICKS,
    nof_rule: str = "official",
    stop_at_iou: float | None = None,
    extra: Iterable[str] = (),
) -> pd.DataFrame:
    """One row per (dataset, sample_id) in stored order, one column per metric's instance
    column (`NoC@90`, `NoF@90` as 0/1, `IoU@5`, `BIoU@5`, `IoU-AUC`)."""
    frames = []
    for ev in evaluate(trajectories, names, max_clicks, nof_rule, stop_at_iou, extra):
        frame = ev.values.copy()
        frame.index = pd.MultiIndex.from_arrays(
            [[ev.data.dataset] * len(frame), list(frame.index)], names=["dataset", "sample_id"]
        )
        frames.append(frame)
    if not frames:
        return pd.DataFrame(
            index=pd.MultiIndex.from_arrays([[], []], names=["dataset", "sample_id"])
        )
    return pd.concat(frames)


def timing_row(trajectories: pd.DataFrame) -> dict[str, float]:
    """Seconds per click of the model and of the harness. start_s (predictor.start, e.g. a SAM
    image encoder) is model time spent once per instance; the official SPC divides the whole
    loop's time by the clicks."""
    if "model_s" not in trajectories or "harness_s" not in trajectories or not len(trajectories):
        return {}
    clicks = len(trajectories)
    model = trajectories["model_s"].sum()
    if "start_s" in trajectories:
        model += trajectories["start_s"].sum()
    return {
        "SPC_model_s": float(model / clicks),
        "SPC_harness_s": float(trajectories["harness_s"].sum() / clicks),
    }


def summary_frame(
    evaluations: Sequence[DatasetEvaluation], trajectories: pd.DataFrame
) -> pd.DataFrame:
    """One row per dataset: instances, each metric's figure, SPC. NoF columns stay integers
    unless some dataset has them unavailable (NaN)."""
    rows = {}
    for ev in evaluations:
        row: dict[str, float] = {"instances": len(ev.data)}
        row.update(ev.summary)
        part = trajectories[trajectories["dataset"] == ev.data.dataset]
        row.update(timing_row(part))
        rows[ev.data.dataset] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "dataset"
    if "instances" in frame:
        frame["instances"] = frame["instances"].astype(int)
    counts = {m.name for ev in evaluations for m in ev.metrics if m.is_count}
    for col in frame.columns:
        if col in counts and not frame[col].isna().any():
            frame[col] = frame[col].astype(int)
    return frame


def summarize(
    trajectories: pd.DataFrame,
    max_clicks: int = official.MAX_CLICKS,
    nof_rule: str = "official",
    names: str | Iterable[str] | None = None,
    stop_at_iou: float | None = None,
) -> pd.DataFrame:
    """One row per dataset (first-seen order): instances, the metrics (default: NoC@80-95,
    NoF@85-95, mIoU@k, mBIoU@k, IoU-AUC) and SPC."""
    evaluations = evaluate(trajectories, names, max_clicks, nof_rule, stop_at_iou)
    return summary_frame(evaluations, trajectories)


def size_bucket(area: float) -> str:
    """COCO's bucket of an object of `area` GT pixels."""
    for name, low, high in SIZE_BUCKETS:
        if low <= area < high:
            return name
    return SIZE_BUCKETS[-1][0]


SIZE_SEPARATOR = "\x1f"


def split_by_size(trajectories: pd.DataFrame) -> pd.DataFrame:
    """The trajectories with each dataset split into its size buckets: `dataset` becomes
    dataset + SIZE_SEPARATOR + bucket, datasets in first-seen order, buckets small to large
    (`size_index` turns a summary's index back into (dataset, size))."""
    if "gt_area" not in trajectories or trajectories["gt_area"].isna().any():
        raise MetricError(
            "no object sizes in this run (made before the gt_area column); "
            "`bench rescore RUN` fills them in"
        )
    datasets = list(dict.fromkeys(trajectories["dataset"]))
    buckets = [b for b, _, _ in SIZE_BUCKETS]
    bucket = trajectories["gt_area"].map(size_bucket)
    out = trajectories.assign(dataset=trajectories["dataset"].astype(str) + SIZE_SEPARATOR + bucket)
    rank = trajectories["dataset"].map({d: i for i, d in enumerate(datasets)}) * len(buckets)
    out["_order"] = rank + bucket.map({b: i for i, b in enumerate(buckets)})
    out = out.sort_values("_order", kind="stable").drop(columns="_order")
    return out.reset_index(drop=True)


def size_index(index: pd.Index) -> pd.MultiIndex:
    return pd.MultiIndex.from_tuples(
        [tuple(str(v).split(SIZE_SEPARATOR, 1)) for v in index], names=["dataset", "size"]
    )
