"""The paper's tables (2: NoC, 3: medical mIoU, 5: compute) built from run summaries, and the
robustness table (NoC@90 under each click model).

Every number comes from `bench.metrics.summarize` (NoC, mIoU), `bench.stats` (confidence
intervals, paired tests) or `profile.csv` (compute); this module only arranges, compares with
published values and formats them. Each table keeps three views of the same content: `data`
(tidy numbers, written as CSV), and `display` + `bold` (formatted cells, rendered as HTML and
LaTeX), with the CI text and significance marks of each cell beside them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from bench import metrics, stats
from bench.metrics import get_metric
from bench.reports.compare import OFFICIAL_CLICK_MODEL, Flags, comparable_protocol
from bench.reports.reference import published_compute, published_metric
from bench.reports.runs import Run, short_model_name

PAPER_DATASET_ORDER = ("GrabCut", "Berkeley", "SBD", "DAVIS", "PascalVOC", "COCO_MVal")
MEDICAL_DATASETS = ("ssTEM", "BraTS", "OAIZIB")  # SimpleClick Table 3
NOC_METRICS = ("NoC@85", "NoC@90")
MIOU_METRICS = ("mIoU@10", "mIoU@20")
ROBUSTNESS_METRIC = "NoC@90"
FLAG_MARK = "†"
SIGNIFICANT_MARK = "*"
MISSING = "–"
CI_NOTE = f"[lo, hi]: {stats.CI_METHOD}."
SIGNIFICANCE_NOTE = (
    f"Bold: best comparable run of the column. {SIGNIFICANT_MARK}: the best is significantly "
    f"better than the runner-up (p < {stats.ALPHA}, {stats.PAIRED_TEST}); a bold value without "
    f"{SIGNIFICANT_MARK} is not distinguishable from the runner-up on these instances."
)


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
    intervals: pd.DataFrame | None = None  # same shape: "[lo, hi]" or ""
    marks: pd.DataFrame | None = None  # same shape: SIGNIFICANT_MARK or ""

    @property
    def empty(self) -> bool:
        return self.display.shape[0] == 0 or self.display.shape[1] == 0

    def interval(self, i: int, j: int) -> str:
        return "" if self.intervals is None else str(self.intervals.iat[i, j])

    def mark(self, i: int, j: int) -> str:
        return "" if self.marks is None else str(self.marks.iat[i, j])


def is_medical(dataset_label: str) -> bool:
    """`ssTEM` or `ssTEM (other split)`: the official folder decides."""
    return dataset_label.split(" (", 1)[0] in MEDICAL_DATASETS


def summarize_runs(runs: list[Run], extra: Sequence[str] = ()) -> dict[str, pd.DataFrame]:
    """`bench.stats.summarize_run` per run (the metrics of `bench.metrics.summarize`, each
    with `_lo` / `_hi` CI bounds, under the run's own click limit and early stop), indexed by
    the official dataset name."""
    out = {}
    for run in runs:
        summary = stats.summarize_run(run.trajectories, run.manifest, extra=extra)
        summary.index = [run.dataset_label(name) for name in summary.index]
        summary.index.name = "dataset"
        out[run.label] = summary
    return out


def per_instance_runs(runs: list[Run], extra: Sequence[str] = ()) -> dict[str, pd.DataFrame]:
    """`bench.stats.per_instance_metrics` per run, the dataset level relabelled as in tables,
    for the paired tests between runs."""
    out = {}
    for run in runs:
        frame = metrics.per_instance(
            run.trajectories,
            max_clicks=run.max_clicks,
            stop_at_iou=run.protocol.get("stop_at_iou"),
            extra=extra,
        )
        labels = [run.dataset_label(str(d)) for d in frame.index.get_level_values("dataset")]
        frame.index = pd.MultiIndex.from_arrays(
            [labels, frame.index.get_level_values("sample_id")], names=["dataset", "sample_id"]
        )
        out[run.label] = frame
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


def _interval_text(low: float | None, high: float | None, spec: str = ".2f") -> str:
    if low is None or high is None:
        return ""
    return f"[{format(low, spec)}, {format(high, spec)}]"


def _bold_best(
    display_rows: list[list[float | None]],
    kinds: list[str],
    eligible: list[bool],
    lower: bool | Sequence[bool],
) -> list[list[bool]]:
    """Best measured value of each column among comparable runs (ties all bold); `lower` is
    the direction of every column or of each."""
    n_cols = len(display_rows[0]) if display_rows else 0
    lowers = [lower] * n_cols if isinstance(lower, bool) else list(lower)
    bold = [[False] * n_cols for _ in display_rows]
    for col in range(n_cols):
        candidates = [
            row[col]
            for row, kind, ok in zip(display_rows, kinds, eligible)
            if kind == "measured" and ok and row[col] is not None
        ]
        if len(candidates) < 2:
            continue
        best = min(candidates) if lowers[col] else max(candidates)
        for i, (row, kind, ok) in enumerate(zip(display_rows, kinds, eligible)):
            if (
                kind == "measured"
                and ok
                and row[col] is not None
                and round(row[col], 2) == round(best, 2)
            ):
                bold[i][col] = True
    return bold


PERCENT_GROUPS = ("miou", "mbiou", "auc")


def metric_scale(name: str) -> float:
    """Tables show IoU-like metrics in percent, as the papers do; clicks and counts as is."""
    return 100.0 if get_metric(name).group in PERCENT_GROUPS else 1.0


def per_instance_column(metric: str) -> str:
    """The per-instance column behind a summary metric: `mIoU@10` is the mean of `IoU@10`."""
    return get_metric(metric).instance_column


@dataclass(frozen=True)
class BestTest:
    """The bold best of one column against the runner-up, on the instances both evaluated."""

    best: str
    runner_up: str
    comparison: stats.PairedComparison

    @property
    def significant(self) -> bool:
        return self.comparison.significant()


def best_vs_runner_up(
    candidates: dict[str, float],
    per_instance: dict[str, pd.DataFrame],
    dataset: str,
    metric: str,
    lower: bool,
) -> BestTest | None:
    """Paired test of the single best run against the next one (None: a tie for best, fewer
    than two runs, or no shared instance)."""
    if len(candidates) < 2:
        return None
    ranked = sorted(candidates, key=lambda lb: candidates[lb] if lower else -candidates[lb])
    best, runner_up = ranked[0], ranked[1]
    if round(candidates[best], 2) == round(candidates[runner_up], 2):
        return None  # a tie: both bold, nothing to mark
    comparison = _paired_on_shared(per_instance, best, runner_up, dataset, metric)
    if comparison is None:
        return None
    return BestTest(best, runner_up, comparison)


def _published_only_rows(
    paper_table: int, datasets: list[str], metric_names: tuple[str, ...], shown: set[str], pick
) -> list[tuple[str, str, dict[tuple[str, str], tuple[float, str]]]]:
    """(reference, row label, {(dataset, metric): (value, source)}) for the paper's methods that
    no run stands for, in the paper's row order; `pick(reference)` selects them."""
    from bench.reports.reference import published_paper_rows

    rows = published_paper_rows(paper_table, exclude_references=shown)
    rows = rows[rows["dataset"].isin(datasets) & rows["metric"].isin(metric_names)]
    out = []
    for reference, group in rows.groupby("reference", sort=False):
        if not pick(str(reference)):
            continue
        first = group.iloc[0]
        backbone = "" if pd.isna(first["backbone"]) else f" {first['backbone']}"
        train = "" if pd.isna(first["train_set"]) else f", {first['train_set']}"
        label = f"{first['method']}{backbone} ({reference}{train}): published only"
        cells = {
            (str(r["dataset"]), str(r["metric"])): (float(r["value"]), str(r["source"]))
            for _, r in group.iterrows()
        }
        out.append((str(reference), label, cells))
    return out


def published_selector(selection: Sequence[str] | str | None):
    """`None`/`none`: no published-only rows; `all`; or reference keys / architectures
    (`simpleclick-vit-h/sbd`, `focalclick-segformer-b0-s2`)."""
    if selection is None:
        return lambda ref: False
    items = [selection] if isinstance(selection, str) else list(selection)
    items = [i.strip() for i in items if i and i.strip()]
    if not items or items == ["none"]:
        return lambda ref: False
    if "all" in items:
        return lambda ref: True
    from bench.reports.reference import architecture, known_references

    known = set(known_references())
    unknown = [i for i in items if i not in known and i not in {architecture(k) for k in known}]
    if unknown:
        raise ValueError(
            f"--published {', '.join(unknown)}: no published result under that key; "
            f"known: {', '.join(sorted(known))}"
        )
    wanted = set(items)
    return lambda ref: ref in wanted or architecture(ref) in wanted


def _metric_table(
    runs: list[Run],
    summaries: dict[str, pd.DataFrame],
    flags: Flags,
    datasets: list[str],
    metric_names: tuple[str, ...],
    *,
    key: str,
    title: str,
    scale: float | None = None,
    lower_is_better: bool | None = None,
    per_instance: dict[str, pd.DataFrame] | None = None,
    paper_table: int | None = None,
    published: Sequence[str] | str | None = None,
) -> ReportTable:
    """`scale` / `lower_is_better` None: each metric's own, from the registry (IoU-like
    metrics in percent)."""
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
    scales = [metric_scale(m) if scale is None else scale for _, m in column_keys]
    lowers = [
        get_metric(m).lower_is_better if lower_is_better is None else lower_is_better
        for _, m in column_keys
    ]
    if not column_keys:
        runs = []  # nothing of this table was evaluated: an empty table
    values: list[list[float | None]] = []
    texts: list[list[str]] = []
    cis: list[list[str]] = []
    tips: list[list[str]] = []
    rows: list[RowStyle] = []
    eligible: list[bool] = []
    run_of_row: list[str | None] = []
    records = []
    for run in runs:
        summary = summaries[run.label]
        label = run.label + (FLAG_MARK if flags.run_flagged(run.label) else "")
        measured = [_value(summary, d, m) for d, m in column_keys]
        measured = [None if v is None else v * f for v, f in zip(measured, scales)]
        bounds = [
            (_value(summary, d, f"{m}_lo"), _value(summary, d, f"{m}_hi")) for d, m in column_keys
        ]
        bounds = [
            (None, None) if lo is None or hi is None else (lo * f, hi * f)
            for (lo, hi), f in zip(bounds, scales)
        ]
        published_values = [published_metric(run.reference, d, m) for d, m in column_keys]
        if all(v is None for v in measured) and all(p is None for p in published_values):
            continue  # the run did not evaluate any dataset of this table
        values.append(measured)
        texts.append([_fmt(v) for v in measured])
        cis.append(
            [
                _interval_text(lo, hi) if v is not None else ""
                for v, (lo, hi) in zip(measured, bounds)
            ]
        )
        tips.append([""] * len(column_keys))
        rows.append(RowStyle(label, "measured"))
        eligible.append(not flags.run_flagged(run.label))
        run_of_row.append(run.label)
        for (d, m), v, (lo, hi), p in zip(column_keys, measured, bounds, published_values):
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
                    "ci_low": lo,
                    "ci_high": hi,
                    "published": None if p is None else p.value,
                    "difference": None if (p is None or v is None) else v - p.value,
                    "published_source": "" if p is None else p.source,
                    "flags": "; ".join(flags.runs.get(run.label, []) + flags.datasets.get(d, [])),
                }
            )
        if any(p is not None for p in published_values):
            values.append([None if p is None else p.value for p in published_values])
            texts.append(["" if p is None else _fmt(p.value) for p in published_values])
            cis.append([""] * len(column_keys))
            tips.append(["" if p is None else p.source for p in published_values])
            rows.append(RowStyle(f"published ({run.reference})", "published"))
            eligible.append(False)
            run_of_row.append(None)
            diffs = [
                None if (p is None or v is None) else v - p.value
                for v, p in zip(measured, published_values)
            ]
            values.append(diffs)
            texts.append(["" if d is None else _fmt(d, "+.2f") for d in diffs])
            cis.append([""] * len(column_keys))
            tips.append(["difference: this run minus published"] * len(diffs))
            rows.append(RowStyle("difference", "difference"))
            eligible.append(False)
            run_of_row.append(None)
    n_published_only = 0
    if paper_table is not None and column_keys:
        shown = {r.reference for r in runs if r.reference}
        for reference, label, cells in _published_only_rows(
            paper_table, datasets, metric_names, shown, published_selector(published)
        ):
            row_cells = [cells.get(k) for k in column_keys]
            values.append([None if c is None else c[0] for c in row_cells])
            texts.append(["" if c is None else _fmt(c[0]) for c in row_cells])
            cis.append([""] * len(column_keys))
            tips.append(["" if c is None else c[1] for c in row_cells])
            rows.append(RowStyle(label, "published"))
            eligible.append(False)
            run_of_row.append(None)
            n_published_only += 1
            for (d, m), c in zip(column_keys, row_cells):
                if c is not None:
                    records.append(
                        {
                            "method": label,
                            "reference": reference,
                            "dataset": d,
                            "metric": m,
                            "published": c[0],
                            "published_source": c[1],
                        }
                    )
    bold = _bold_best(values, [r.kind for r in rows], eligible, lowers)
    # A column whose runs saw different samples is not ranked.
    for col, (d, _) in enumerate(column_keys):
        if flags.dataset_flagged(d):
            for row in bold:
                row[col] = False
    marks = [[""] * len(column_keys) for _ in rows]
    tests: dict[tuple[str, str], BestTest] = {}
    scale_of = {key: f for key, f in zip(column_keys, scales)}
    if per_instance is not None:
        for col, (d, m) in enumerate(column_keys):
            if not any(row[col] for row in bold):
                continue
            candidates = {
                run_of_row[i]: values[i][col]
                for i in range(len(rows))
                if rows[i].kind == "measured" and eligible[i] and values[i][col] is not None
            }
            candidates = {lb: v for lb, v in candidates.items() if lb is not None}
            test = best_vs_runner_up(candidates, per_instance, d, m, lowers[col])
            if test is None:
                continue
            tests[(d, m)] = test
            if test.significant:
                marks[run_of_row.index(test.best)][col] = SIGNIFICANT_MARK
    for record in records:
        test = tests.get((record["dataset"], record["metric"]))
        if test is not None and record["method"] == test.best:
            record["runner_up"] = test.runner_up
            record["difference_vs_runner_up"] = (
                test.comparison.difference * scale_of[(record["dataset"], record["metric"])]
            )
            record["p_vs_runner_up"] = test.comparison.p_value
            record["significant_vs_runner_up"] = test.significant
    index = pd.Index([r.label for r in rows])
    data = _integer_counts(pd.DataFrame.from_records(records))
    notes = _flag_notes(runs, flags, datasets)
    notes += _unavailable_notes(runs, metric_names)
    if any(any(c) for c in cis):
        notes.append(CI_NOTE)
    if any(any(row) for row in bold):
        notes.append(SIGNIFICANCE_NOTE)
    if n_published_only:
        notes.append(
            'Rows marked "published only" are the paper\'s numbers for methods no run here '
            "stands for (hover for the source); they are not ranked."
        )
    return ReportTable(
        key=key,
        title=title,
        display=pd.DataFrame(texts, index=index, columns=columns),
        bold=pd.DataFrame(bold, index=index, columns=columns),
        titles=pd.DataFrame(tips, index=index, columns=columns),
        rows=tuple(rows),
        data=data,
        notes=tuple(notes),
        intervals=pd.DataFrame(cis, index=index, columns=columns),
        marks=pd.DataFrame(marks, index=index, columns=columns),
    )


def _unavailable_notes(runs: list[Run], metric_names: Sequence[str]) -> list[str]:
    """A NoC / NoF above a run's early stop is never a value: say why its cells are empty."""
    from bench.metrics import get_metric

    notes = []
    for run in runs:
        stop = run.protocol.get("stop_at_iou")
        if stop is None:
            continue
        above = [
            m
            for m in metric_names
            if get_metric(m).group in ("noc", "nof")
            and float(get_metric(m).param) > float(stop) + 1e-6
        ]
        if above:
            notes.append(
                f"{run.label}: {', '.join(above)} unavailable ({MISSING}): the run stopped each "
                f"instance at IoU {stop} (--stop-at-iou)."
            )
    return notes


def _flag_notes(runs: list[Run], flags: Flags, datasets: list[str]) -> list[str]:
    notes = []
    for run in runs:
        for problem in flags.runs.get(run.label, []):
            notes.append(f"{FLAG_MARK} {run.label}: {problem}; not ranked.")
    for d in datasets:
        for problem in flags.datasets.get(d, []):
            notes.append(f"{FLAG_MARK} {d}: {problem}; column not ranked.")
    return notes


def _chosen_title(table: str, names: Sequence[str]) -> str:
    directions = sorted({"lower" if get_metric(m).lower_is_better else "higher" for m in names})
    percent = any(metric_scale(m) != 1.0 for m in names)
    return (
        f"{table}. {' / '.join(names)} ("
        + (
            f"{directions[0]} is better"
            if len(directions) == 1
            else "NoC / NoF: lower is better, IoU: higher is better"
        )
        + ("; IoU metrics in %" if percent else "")
        + "; best comparable run in bold)"
    )


def noc_table(
    runs: list[Run],
    summaries: dict[str, pd.DataFrame],
    flags: Flags,
    per_instance: dict[str, pd.DataFrame] | None = None,
    published: Sequence[str] | str | None = None,
    metric_names: Sequence[str] | None = None,
) -> ReportTable:
    """Table 2: NoC@85/90 (or `metric_names`, the report's `--metrics`) per dataset and method
    with 95% CIs, beside the published values; `published` adds the paper's other methods as
    published-only rows (`published_selector`)."""
    datasets = ordered_datasets(summaries, lambda d: not is_medical(d))
    if metric_names is not None:
        return _metric_table(
            runs,
            summaries,
            flags,
            datasets,
            tuple(metric_names),
            key="table2-noc",
            title=_chosen_title("Table 2", metric_names),
            per_instance=per_instance,
            paper_table=2,
            published=published,
        )
    return _metric_table(
        runs,
        summaries,
        flags,
        datasets,
        NOC_METRICS,
        key="table2-noc",
        title="Table 2. NoC@85 / NoC@90 (lower is better; best comparable run in bold)",
        scale=1.0,
        lower_is_better=True,
        per_instance=per_instance,
        paper_table=2,
        published=published,
    )


def medical_table(
    runs: list[Run],
    summaries: dict[str, pd.DataFrame],
    flags: Flags,
    per_instance: dict[str, pd.DataFrame] | None = None,
    published: Sequence[str] | str | None = None,
    metric_names: Sequence[str] | None = None,
) -> ReportTable:
    """Table 3: mIoU@10 / mIoU@20 (percent; or `metric_names`, the report's `--metrics`) on
    the medical datasets, with 95% CIs."""
    datasets = ordered_datasets(summaries, is_medical)
    if metric_names is not None:
        return _metric_table(
            runs,
            summaries,
            flags,
            datasets,
            tuple(metric_names),
            key="table3-medical-miou",
            title=_chosen_title("Table 3 (medical images)", metric_names),
            per_instance=per_instance,
            paper_table=3,
            published=published,
        )
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
        per_instance=per_instance,
        paper_table=3,
        published=published,
    )


def _method_groups(runs: list[Run]) -> dict[str, list[Run]]:
    """Runs of one method (model, options, checkpoint) and one protocol apart from the click
    model, keyed by a display name unique in the report."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        protocol = {
            k: v for k, v in comparable_protocol(run.protocol).items() if k != "click_model"
        }
        key = run.method_key + repr(sorted(protocol.items(), key=str))
        groups.setdefault(key, []).append(run)
    short = [short_model_name(members[0].model_name) for members in groups.values()]
    names: dict[str, list[Run]] = {}
    for name, members in zip(short, groups.values()):
        if short.count(name) > 1:
            options = members[0].model.get("options") or {}
            if options:
                name += " (" + ", ".join(f"{k}={v}" for k, v in sorted(options.items())) + ")"
        n = sum(1 for existing in names if existing.split(" #", 1)[0] == name)
        names[name if n == 0 else f"{name} #{n + 1}"] = members
    return names


def robustness_table(
    runs: list[Run],
    summaries: dict[str, pd.DataFrame],
    flags: Flags,
    per_instance: dict[str, pd.DataFrame],
) -> ReportTable:
    """NoC@90 of each method and dataset under every click model among the runs, and the change
    from the official clicker on the instances both runs evaluated (paired). Empty when every
    run used one click model."""
    click_models = list(dict.fromkeys(r.click_model for r in runs))
    if OFFICIAL_CLICK_MODEL in click_models:
        click_models.remove(OFFICIAL_CLICK_MODEL)
        click_models.insert(0, OFFICIAL_CLICK_MODEL)
    datasets = ordered_datasets(summaries, lambda d: True) if len(click_models) > 1 else []
    delta = f"Δ vs {OFFICIAL_CLICK_MODEL}"
    columns = pd.MultiIndex.from_arrays(
        [
            [d + (FLAG_MARK if flags.dataset_flagged(d) else "") for d in datasets for _ in (0, 1)],
            [c for _ in datasets for c in (ROBUSTNESS_METRIC, delta)],
        ]
    )
    texts, cis, marks, tips, rows, records = [], [], [], [], [], []
    no_official = []
    for name, members in _method_groups(runs).items() if datasets else []:
        members = sorted(members, key=lambda r: click_models.index(r.click_model))
        official = next((r for r in members if r.click_model == OFFICIAL_CLICK_MODEL), None)
        if official is None:
            no_official.append(name)
        for run in members:
            flagged = bool(flags.problems_besides_click_model(run.label))
            label = f"{name} · {run.click_model}" + (FLAG_MARK if flagged else "")
            if sum(r.click_model == run.click_model for r in members) > 1:
                label += f" ({run.path.name})"
            row_text, row_ci, row_mark, row_tip = [], [], [], []
            summary = summaries[run.label]
            for d in datasets:
                value = _value(summary, d, ROBUSTNESS_METRIC)
                low = _value(summary, d, f"{ROBUSTNESS_METRIC}_lo")
                high = _value(summary, d, f"{ROBUSTNESS_METRIC}_hi")
                row_text.append(_fmt(value))
                row_ci.append(_interval_text(low, high) if value is not None else "")
                row_mark.append("")
                row_tip.append(f"{run.label}: {run.path}")
                record = {
                    "method": name,
                    "click_model": run.click_model,
                    "run": str(run.path),
                    "dataset": d,
                    "instances": None
                    if _value(summary, d, "instances") is None
                    else int(_value(summary, d, "instances")),
                    "metric": ROBUSTNESS_METRIC,
                    "value": value,
                    "ci_low": low,
                    "ci_high": high,
                }
                # The official run of this method that covers dataset d (runs may be split
                # per dataset, e.g. one folder per dataset and click model).
                reference = next(
                    (
                        r
                        for r in members
                        if r.click_model == OFFICIAL_CLICK_MODEL
                        and _value(summaries[r.label], d, ROBUSTNESS_METRIC) is not None
                    ),
                    official,
                )
                comparison = None
                if (
                    reference is not None
                    and run.click_model != OFFICIAL_CLICK_MODEL
                    and value is not None
                ):
                    comparison = _paired_on_shared(
                        per_instance, run.label, reference.label, d, ROBUSTNESS_METRIC
                    )
                if comparison is None:
                    row_text.append(
                        "" if run.click_model == OFFICIAL_CLICK_MODEL or value is None else MISSING
                    )
                    row_ci.append("")
                    row_mark.append("")
                    row_tip.append("")
                else:
                    row_text.append(_fmt(comparison.difference, "+.2f"))
                    row_ci.append(_interval_text(comparison.low, comparison.high, "+.2f"))
                    row_mark.append(SIGNIFICANT_MARK if comparison.significant() else "")
                    row_tip.append(
                        f"{comparison.n} shared instances; Wilcoxon p = "
                        f"{stats.format_p(comparison.p_value)}"
                    )
                    record.update(
                        {
                            "delta_vs_official": comparison.difference,
                            "delta_ci_low": comparison.low,
                            "delta_ci_high": comparison.high,
                            "delta_instances": comparison.n,
                            "delta_p_value": comparison.p_value,
                        }
                    )
                records.append(record)
            texts.append(row_text)
            cis.append(row_ci)
            marks.append(row_mark)
            tips.append(row_tip)
            rows.append(RowStyle(label, "measured"))
    index = pd.Index([r.label for r in rows])
    notes = []
    if rows:
        notes = [
            f"{delta}: {ROBUSTNESS_METRIC} under the row's click model minus under "
            f"{OFFICIAL_CLICK_MODEL} for the same method, on the instances both runs evaluated "
            f"(mean paired difference, its CI by the paired bootstrap); {SIGNIFICANT_MARK}: "
            f"p < {stats.ALPHA}, {stats.PAIRED_TEST}. Positive: more clicks for this user.",
            CI_NOTE,
        ]
        if no_official:
            notes.append(
                "No official-clicker run for: " + ", ".join(no_official) + f" ({delta} needs one)."
            )
        for run in runs:
            for problem in flags.problems_besides_click_model(run.label):
                notes.append(f"{FLAG_MARK} {run.label}: {problem}.")
    return ReportTable(
        key="robustness-click-models",
        title=f"Robustness. {ROBUSTNESS_METRIC} under each click model (lower is better)",
        display=pd.DataFrame(texts, index=index, columns=columns),
        bold=pd.DataFrame(False, index=index, columns=columns),
        titles=pd.DataFrame(tips, index=index, columns=columns),
        rows=tuple(rows),
        data=_integer_counts(pd.DataFrame.from_records(records)),
        notes=tuple(notes),
        intervals=pd.DataFrame(cis, index=index, columns=columns),
        marks=pd.DataFrame(marks, index=index, columns=columns),
    )


def _integer_counts(data: pd.DataFrame) -> pd.DataFrame:
    """Instance counts stay integers in the CSV where other rows leave them empty."""
    for column in ("instances", "delta_instances"):
        if column in data:
            data[column] = data[column].astype("Int64")
    return data


def _paired_on_shared(
    per_instance: dict[str, pd.DataFrame], a: str, b: str, dataset: str, metric: str
) -> stats.PairedComparison | None:
    """Run a minus run b on their shared instances of `dataset` (None: none shared)."""
    values = []
    for label in (a, b):
        frame = per_instance.get(label)
        if frame is None or dataset not in frame.index.get_level_values("dataset"):
            return None
        values.append(frame.loc[dataset][per_instance_column(metric)].dropna())
    shared = values[0].index.intersection(values[1].index)
    if shared.empty:
        return None
    return stats.paired_comparison(
        values[0].loc[shared].to_numpy(), values[1].loc[shared].to_numpy()
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
    ("GFLOPs full, encoder / decoder", "gflops_encoder_full", ".2f"),  # SAM family only
    ("Peak memory (MiB)", "peak_mem_MiB", ".0f"),
    ("SPC model (s), median [IQR]", "spc_model_median_s", ".4f"),
    ("Encoder (s/instance), median [IQR]", "spc_encoder_median_s", ".4f"),  # SAM family only
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
        elif column in ("spc_model_median_s", "spc_encoder_median_s"):
            spc, iqr = _num(p, column), _num(p, column.replace("median", "iqr"))
            cells.append(MISSING if spc is None else f"{spc:.4f} [{_fmt(iqr, '.4f')}]")
        elif column == "gflops_encoder_full":
            encoder, decoder = _num(p, column), _num(p, "gflops_decoder_full")
            cells.append(MISSING if encoder is None else f"{encoder:.2f} / {_fmt(decoder)}")
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
    if any(_text(row, "timing_split") for _, rows in profiled for _, row in rows.iterrows()):
        notes.append(
            "SAM family: the image encoder runs once per instance (Encoder s/instance; `bench "
            "run` stores it as start_s), the prompt encoder and mask decoder at every click "
            "(SPC model); their GFLOPs are the first click's, encoder + one decoder pass. "
            "SimpleClick and RITM run their whole network at every click."
        )
    cascaded = [
        f"{_text(row, 'model')} ({_text(row, 'cascade')}"
        + (
            f"; {_num(row, 'forwards_per_click'):.2f} forwards per timed click)"
            if _num(row, "forwards_per_click") is not None
            else ")"
        )
        for _, rows in profiled
        for _, row in rows.iterrows()
        if _text(row, "cascade")
    ]
    if cascaded:
        notes.append(
            "CFR-ICL cascade-forward refinement: GFLOPs and peak memory are per network forward; "
            "each of the first cf_click clicks runs up to cf_n + 1 forwards (fewer when acf "
            "stops early), the other clicks one, so a first click costs up to cf_n + 1 times "
            "SimpleClick's and an SPC median over all clicks hides it: " + "; ".join(cascaded) + "."
        )
    plugin_rows = [
        run.label
        for run, rows in profiled
        for _, row in rows.iterrows()
        if _text(row, "flops_convention_paper").startswith("none")
    ]
    if plugin_rows:
        notes.append(
            "Profiled through the predictor's calls (bench profile --model): "
            + ", ".join(dict.fromkeys(plugin_rows))
            + ". GFLOPs full = FlopCounterMode per click, start() amortised over the clicks "
            "(encoder / decoder: start() once, one predict()); no paper convention."
        )
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
