"""The paper's tables (2: NoC, 3: medical mIoU, 5: compute) built from run summaries.

Every number comes from `bench.metrics.summarize` (NoC, mIoU) or from `profile.csv` (compute);
this module only arranges, compares with published values and formats them. Each table keeps
three views of the same content: `data` (tidy numbers, written as CSV), and `display` +
`bold` (formatted cells, rendered as HTML and LaTeX).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from bench import metrics
from bench.reports.compare import Flags
from bench.reports.reference import published_compute, published_metric
from bench.reports.runs import Run

PAPER_DATASET_ORDER = ("GrabCut", "Berkeley", "SBD", "DAVIS", "PascalVOC", "COCO_MVal")
MEDICAL_DATASETS = ("ssTEM", "BraTS", "OAIZIB")  # SimpleClick Table 3
NOC_METRICS = ("NoC@85", "NoC@90")
MIOU_METRICS = ("mIoU@10", "mIoU@20")
FLAG_MARK = "†"
MISSING = "–"


@dataclass(frozen=True)
class RowStyle:
    label: str
    kind: str  # "measured" | "published" | "difference"


@dataclass(frozen=True)
class ReportTable:
    key: str  # file-name part: report-<key>.csv / .tex
    title: str
    display: pd.DataFrame  # formatted strings; columns are (group, column) pairs
    bold: pd.DataFrame  # same shape: best value of its column
    titles: pd.DataFrame  # same shape: tooltip (the published value's source)
    rows: tuple[RowStyle, ...]
    data: pd.DataFrame  # tidy numbers for the CSV
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return self.display.shape[0] == 0 or self.display.shape[1] == 0


def is_medical(dataset_label: str) -> bool:
    """`ssTEM` or `ssTEM (other split)`: the official folder decides."""
    return dataset_label.split(" (", 1)[0] in MEDICAL_DATASETS


def summarize_runs(runs: list[Run]) -> dict[str, pd.DataFrame]:
    """`bench.metrics.summarize` per run, indexed by the official dataset name."""
    out = {}
    for run in runs:
        summary = metrics.summarize(run.trajectories, max_clicks=run.max_clicks)
        summary.index = [run.dataset_label(name) for name in summary.index]
        summary.index.name = "dataset"
        out[run.label] = summary
    return out


def ordered_datasets(summaries: dict[str, pd.DataFrame], keep) -> list[str]:
    seen = list(dict.fromkeys(name for s in summaries.values() for name in s.index if keep(name)))
    paper = [d for d in PAPER_DATASET_ORDER if d in seen]
    return paper + [d for d in seen if d not in paper]


def _fmt(value: float | None, spec: str = ".2f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return format(value, spec)


def _value(summary: pd.DataFrame, dataset: str, metric: str) -> float | None:
    if dataset not in summary.index or metric not in summary.columns:
        return None
    value = summary.at[dataset, metric]
    return None if pd.isna(value) else float(value)


def _bold_best(
    display_rows: list[list[float | None]], kinds: list[str], eligible: list[bool], lower: bool
) -> list[list[bool]]:
    """Best measured value of each column among comparable runs (ties all bold)."""
    n_cols = len(display_rows[0]) if display_rows else 0
    bold = [[False] * n_cols for _ in display_rows]
    for col in range(n_cols):
        candidates = [
            row[col]
            for row, kind, ok in zip(display_rows, kinds, eligible)
            if kind == "measured" and ok and row[col] is not None
        ]
        if len(candidates) < 2:
            continue
        best = min(candidates) if lower else max(candidates)
        for i, (row, kind, ok) in enumerate(zip(display_rows, kinds, eligible)):
            if (
                kind == "measured"
                and ok
                and row[col] is not None
                and round(row[col], 2) == round(best, 2)
            ):
                bold[i][col] = True
    return bold


def _metric_table(
    runs: list[Run],
    summaries: dict[str, pd.DataFrame],
    flags: Flags,
    datasets: list[str],
    metric_names: tuple[str, ...],
    *,
    key: str,
    title: str,
    scale: float,
    lower_is_better: bool,
) -> ReportTable:
    columns = pd.MultiIndex.from_arrays(
        [
            [
                d + (FLAG_MARK if flags.dataset_flagged(d) else "")
                for d in datasets
                for _ in metric_names
            ],
            [m for _ in datasets for m in metric_names],
        ]
    )
    column_keys = [(d, m) for d in datasets for m in metric_names]
    if not column_keys:
        runs = []  # nothing of this table was evaluated: an empty table
    values: list[list[float | None]] = []
    texts: list[list[str]] = []
    tips: list[list[str]] = []
    rows: list[RowStyle] = []
    eligible: list[bool] = []
    records = []
    for run in runs:
        summary = summaries[run.label]
        label = run.label + (FLAG_MARK if flags.run_flagged(run.label) else "")
        measured = [_value(summary, d, m) for d, m in column_keys]
        measured = [None if v is None else v * scale for v in measured]
        published = [published_metric(run.reference, d, m) for d, m in column_keys]
        if all(v is None for v in measured) and all(p is None for p in published):
            continue  # the run did not evaluate any dataset of this table
        values.append(measured)
        texts.append([_fmt(v) for v in measured])
        tips.append([""] * len(column_keys))
        rows.append(RowStyle(label, "measured"))
        eligible.append(not flags.run_flagged(run.label))
        for (d, m), v, p in zip(column_keys, measured, published):
            instances = _value(summary, d, "instances")
            if v is None and p is None and instances is None:
                continue
            records.append(
                {
                    "method": run.label,
                    "model": run.model_name,
                    "run": str(run.path),
                    "reference": run.reference or "",
                    "dataset": d,
                    "instances": None if instances is None else int(instances),
                    "metric": m,
                    "value": v,
                    "published": None if p is None else p.value,
                    "difference": None if (p is None or v is None) else v - p.value,
                    "published_source": "" if p is None else p.source,
                    "flags": "; ".join(flags.runs.get(run.label, []) + flags.datasets.get(d, [])),
                }
            )
        if any(p is not None for p in published):
            values.append([None if p is None else p.value for p in published])
            texts.append(["" if p is None else _fmt(p.value) for p in published])
            tips.append(["" if p is None else p.source for p in published])
            rows.append(RowStyle(f"published ({run.reference})", "published"))
            eligible.append(False)
            diffs = [
                None if (p is None or v is None) else v - p.value
                for v, p in zip(measured, published)
            ]
            values.append(diffs)
            texts.append(["" if d is None else _fmt(d, "+.2f") for d in diffs])
            tips.append(["difference: this run minus published"] * len(diffs))
            rows.append(RowStyle("difference", "difference"))
            eligible.append(False)
    bold = _bold_best(values, [r.kind for r in rows], eligible, lower_is_better)
    # A column whose runs saw different samples is not ranked.
    for col, (d, _) in enumerate(column_keys):
        if flags.dataset_flagged(d):
            for row in bold:
                row[col] = False
    index = pd.Index([r.label for r in rows])
    notes = _flag_notes(runs, flags, datasets)
    return ReportTable(
        key=key,
        title=title,
        display=pd.DataFrame(texts, index=index, columns=columns),
        bold=pd.DataFrame(bold, index=index, columns=columns),
        titles=pd.DataFrame(tips, index=index, columns=columns),
        rows=tuple(rows),
        data=pd.DataFrame.from_records(records),
        notes=tuple(notes),
    )


def _flag_notes(runs: list[Run], flags: Flags, datasets: list[str]) -> list[str]:
    notes = []
    for run in runs:
        for problem in flags.runs.get(run.label, []):
            notes.append(f"{FLAG_MARK} {run.label}: {problem}; not ranked.")
    for d in datasets:
        for problem in flags.datasets.get(d, []):
            notes.append(f"{FLAG_MARK} {d}: {problem}; column not ranked.")
    return notes


def noc_table(runs: list[Run], summaries: dict[str, pd.DataFrame], flags: Flags) -> ReportTable:
    """Table 2: NoC@85/90 per dataset and method, beside the published values."""
    datasets = ordered_datasets(summaries, lambda d: not is_medical(d))
    table = _metric_table(
        runs,
        summaries,
        flags,
        datasets,
        NOC_METRICS,
        key="table2-noc",
        title="Table 2. NoC@85 / NoC@90 (lower is better; best comparable run in bold)",
        scale=1.0,
        lower_is_better=True,
    )
    return table


def medical_table(runs: list[Run], summaries: dict[str, pd.DataFrame], flags: Flags) -> ReportTable:
    """Table 3: mIoU@10 / mIoU@20 (percent) on the medical datasets."""
    datasets = ordered_datasets(summaries, is_medical)
    return _metric_table(
        runs,
        summaries,
        flags,
        datasets,
        MIOU_METRICS,
        key="table3-medical-miou",
        title="Table 3. mIoU@10 / mIoU@20 in % on medical images (higher is better)",
        scale=100.0,
        lower_is_better=False,
    )


def _profile_rows(run: Run) -> pd.DataFrame:
    """The run's own rows of profile.csv; all rows when none names the run's model."""
    profile = run.profile
    if profile is None or profile.empty:
        return pd.DataFrame()
    if "model" in profile.columns and (profile["model"].astype(str) == run.model_name).any():
        return profile[profile["model"].astype(str) == run.model_name]
    return profile


def _num(row: pd.Series, column: str) -> float | None:
    value = row.get(column)
    return None if value is None or pd.isna(value) else float(value)


def _text(row: pd.Series, column: str) -> str:
    value = row.get(column)
    return "" if value is None or pd.isna(value) else str(value)


# (header, profile.csv column, format); conventions are named in the notes below the table.
COMPUTE_COLUMNS = (
    ("Input", "input_size", None),
    ("Device", "device", None),
    ("dtype", "dtype", None),
    ("Params (M), paper convention", "params_thop_M", ".2f"),
    ("Params (M), full", "params_M", ".2f"),
    ("GFLOPs, paper convention", "gflops_paper", ".2f"),
    ("GFLOPs, full", "gflops_full", ".2f"),
    ("Peak memory (MiB)", "peak_mem_MiB", ".0f"),
    ("SPC model (s), median [IQR]", "spc_model_median_s", ".4f"),
    ("SPC harness (s), median", "spc_harness_median_s", ".4f"),
    ("SPC measured on", "spc_dataset", None),
)
CONVENTION_NOTES = (
    ("Params (M), paper convention", "params_thop_M", "thop's count (paper Table 5)"),
    ("Params (M), full", "params_convention", None),
    ("GFLOPs, paper convention", "flops_convention_paper", None),
    ("GFLOPs, full", "flops_convention_full", None),
    ("Peak memory", "mem_kind", None),
)


def _compute_cells(p: pd.Series) -> list[str]:
    cells = []
    for _, column, spec in COMPUTE_COLUMNS:
        if spec is None:
            cells.append(_text(p, column) or MISSING)
        elif column == "spc_model_median_s":
            spc, iqr = _num(p, column), _num(p, "spc_model_iqr_s")
            cells.append(MISSING if spc is None else f"{spc:.4f} [{_fmt(iqr, '.4f')}]")
        else:
            cells.append(_fmt(_num(p, column), spec))
    return cells


def _convention_notes(profiled: list[tuple[Run, pd.DataFrame]]) -> list[str]:
    """One line per convention; per method where the profiles disagree."""
    notes = []
    for header, column, fixed in CONVENTION_NOTES:
        by_run = {
            run.label: _text(row, column) for run, rows in profiled for _, row in rows.iterrows()
        }
        values = set(by_run.values()) - {""}
        if not values:
            continue
        if fixed is not None:
            notes.append(f"{header}: {fixed}.")
        elif len(values) == 1:
            notes.append(f"{header}: {values.pop()}.")
        else:
            notes.append(f"{header}: " + "; ".join(f"{k}: {v}" for k, v in by_run.items() if v))
    return notes


def compute_table(runs: list[Run]) -> ReportTable:
    """Table 5: parameters, GFLOPs (conventions named), peak memory and SPC from profile.csv."""
    profiled = [(run, _profile_rows(run)) for run in runs]
    profiled = [(run, rows) for run, rows in profiled if not rows.empty]
    headers = [h for h, _, _ in COMPUTE_COLUMNS]
    texts, tips, rows, records = [], [], [], []
    for run, prows in profiled:
        for _, p in prows.iterrows():
            profiled_model = _text(p, "model")
            label = run.label
            if profiled_model and profiled_model != run.model_name:
                label += f" [profile of {profiled_model}]"
            texts.append(_compute_cells(p))
            tips.append([""] * len(headers))
            rows.append(RowStyle(label, "measured"))
            pub_params = published_compute(run.reference, "params_M")
            pub_gflops = published_compute(run.reference, "gflops", p.get("input_size"))
            source = (pub_params or pub_gflops).source if (pub_params or pub_gflops) else ""
            records.append(
                {
                    "method": run.label,
                    "run_model": run.model_name,
                    "reference": run.reference or "",
                    **{k: (None if pd.isna(v) else v) for k, v in p.items()},
                    "published_params_M": None if pub_params is None else pub_params.value,
                    "published_gflops": None if pub_gflops is None else pub_gflops.value,
                    "published_source": source,
                }
            )
            if source:
                published = {
                    "params_thop_M": pub_params,
                    "gflops_paper": pub_gflops,
                }
                texts.append(
                    [
                        "" if published.get(col) is None else _fmt(published[col].value)
                        for _, col, _ in COMPUTE_COLUMNS
                    ]
                )
                tips.append(
                    [
                        "" if published.get(col) is None else published[col].source
                        for _, col, _ in COMPUTE_COLUMNS
                    ]
                )
                rows.append(RowStyle(f"published ({run.reference})", "published"))
    columns = pd.MultiIndex.from_arrays([[""] * len(headers), headers])
    index = pd.Index([r.label for r in rows])
    notes = _convention_notes(profiled)
    with_profile = {id(run) for run, _ in profiled}
    missing = [run.label for run in runs if id(run) not in with_profile]
    if missing:
        notes.append(
            "No profile.csv for: " + ", ".join(missing) + " (run `bench profile --out RUN_DIR`)."
        )
    return ReportTable(
        key="table5-compute",
        title="Table 5. Parameters, GFLOPs, peak memory and seconds per click (SPC)",
        display=pd.DataFrame(texts, index=index, columns=columns),
        bold=pd.DataFrame(False, index=index, columns=columns),
        titles=pd.DataFrame(tips, index=index, columns=columns),
        rows=tuple(rows),
        data=pd.DataFrame.from_records(records),
        notes=tuple(notes),
    )
