"""The report's RClicks section for `bench robustness` folders: the Δ table (Tables 4, 9-11 of
Antonov et al., NeurIPS 2024), Fig. 6-style IoU@k curves of the base run, G1 and G10 with
bootstrap bands, and a flag on every pairwise ranking of methods that changes from the base run
(official clicker) to G1 (the least likely realistic clicks). Numbers come from
`bench.robustness` on the folders alone, like every other part of the report."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns

from bench import robustness
from bench.reports.figures import FigureImage, _grid, method_colors, png_bytes
from bench.reports.runs import short_model_name
from bench.reports.tables import MISSING, ReportTable, RowStyle

RANK_METRICS = ("NoC@90", "IoU-AUC")
CHANGED = "⚑ changes"


@dataclass(frozen=True, eq=False)
class RobustnessSet:
    """One `bench robustness` folder: its method label, runs and statistics table."""

    path: Path
    label: str
    runs: robustness.RobustnessRuns
    table: pd.DataFrame  # robustness.robustness_table: one row per dataset


def split_dirs(folders: list[Path]) -> tuple[list[Path], list[Path]]:
    """(ordinary run folders, robustness folders); a robustness folder's base run joins the
    ordinary runs so that the report's main tables show the method under the official clicker."""
    plain, rob = [], []
    for folder in folders:
        if robustness.is_robustness_dir(folder):
            rob.append(folder)
            plan = robustness.read_plan(folder)
            plain.append((folder / plan["runs"]["base"]["dir"]).resolve())
        else:
            plain.append(folder)
    return plain, rob


def load_sets(folders: list[Path]) -> list[RobustnessSet]:
    runs = [robustness.read_runs(f) for f in folders]
    names = [short_model_name(r.model) for r in runs]
    counts = Counter(names)
    labels = [n if counts[n] == 1 else f"{n} ({f.name})" for n, f in zip(names, folders)]
    return [
        RobustnessSet(Path(f), label, r, robustness.robustness_table(r))
        for f, label, r in zip(folders, labels, runs)
    ]


def _fmt(value: float, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if kind == "percent":
        return f"{100 * value:+.2f}"
    if kind == "iou":
        return f"{100 * value:.2f}"
    if kind == "diou":
        return f"{100 * value:+.2f}"
    if kind == "count":
        return f"{value:+.1f}"
    return f"{value:.2f}"


# (figure in robustness.csv, column title, format)
DELTA_COLUMNS = (
    ("NoC@90 Base", "Base NoC@90", "noc"),
    ("NoC@90 Sample", "Sample NoC@90 ± STD", "noc"),
    ("NoC@90 ΔSB", "ΔSB NoC (%)", "percent"),
    ("NoC@90 ΔGR", "ΔGR NoC (%)", "percent"),
    ("NoC@90 ΔHH", "ΔHH NoC (%)", "percent"),
    ("NoF@90 ΔSB", "ΔSB NoF", "count"),
    ("IoU-AUC Sample", "Sample IoU-AUC (%)", "iou"),
    ("IoU-AUC ΔGR", "ΔGR IoU-AUC (pp)", "diou"),
    ("IoU-AUC NSR", "NSR IoU-AUC (%)", "iou"),
)


def delta_table(sets: list[RobustnessSet]) -> ReportTable:
    """Rows: methods; column groups: datasets; each figure with its bootstrap CI."""
    datasets = list(dict.fromkeys(d for s in sets for d in s.table.index))
    columns = pd.MultiIndex.from_tuples(
        [(d, title) for d in datasets for _, title, _ in DELTA_COLUMNS]
    )
    display, intervals, records = [], [], []
    for s in sets:
        shown, bands = [], []
        for d in datasets:
            row = s.table.loc[d] if d in s.table.index else None
            for figure, _title, kind in DELTA_COLUMNS:
                value = float(row[figure]) if row is not None else math.nan
                text = _fmt(value, kind)
                if figure == "NoC@90 Sample" and row is not None:
                    text += f" ± {float(row['NoC@90 Sample STD']):.2f}"
                lo = float(row.get(f"{figure}_lo", math.nan)) if row is not None else math.nan
                hi = float(row.get(f"{figure}_hi", math.nan)) if row is not None else math.nan
                shown.append(text)
                bands.append("" if math.isnan(lo) else f"[{_fmt(lo, kind)}, {_fmt(hi, kind)}]")
                records.append(
                    {
                        "method": s.label,
                        "dataset": d,
                        "figure": figure,
                        "value": value,
                        "lo": lo,
                        "hi": hi,
                        "prior": s.runs.prior,
                    }
                )
        display.append(shown)
        intervals.append(bands)
    index = [s.label for s in sets]
    frame = pd.DataFrame(display, index=index, columns=columns)
    return ReportTable(
        key="rclicks-deltas",
        title="RClicks robustness. Realistic-user clicks (ten probability-mass groups) vs the "
        "official clicker",
        display=frame,
        bold=pd.DataFrame(False, index=index, columns=columns),
        titles=pd.DataFrame("", index=index, columns=columns),
        rows=tuple(RowStyle(label, "measured") for label in index),
        data=pd.DataFrame(records),
        notes=(
            "Sample: mean over instances of the mean over groups G1..G10, ± the mean "
            "per-instance STD across groups. ΔSB = (Sample - Base) / Base for NoC, "
            "Sample - Base for NoF and IoU-AUC; ΔGR = G1 vs G10; ΔHH = G1..G5 vs G6..G10 "
            "(RClicks compute_benchmark_metrics.ipynb). IoU-AUC: area under the IoU curve / "
            "(clicks - 1), RClicks' IoU@20. NSR: per-instance std / mean of IoU-AUC across "
            "groups.",
            f"[lo, hi]: 95% percentile bootstrap over instances. Priors: "
            f"{', '.join(sorted({s.runs.prior for s in sets}))}.",
        ),
        intervals=pd.DataFrame(intervals, index=index, columns=columns),
    )


def ranking_changes(sets: list[RobustnessSet]) -> ReportTable:
    """Every pair of methods per dataset: its order under the base run and under G1."""
    rows, records = [], []
    datasets = list(dict.fromkeys(d for s in sets for d in s.table.index))
    for d in datasets:
        present = [s for s in sets if d in s.table.index]
        for a, b in combinations(present, 2):
            for metric in RANK_METRICS:
                lower = robustness.LOWER_IS_BETTER[metric]
                values = {
                    run: (
                        float(a.table.at[d, f"{metric} {run}"]),
                        float(b.table.at[d, f"{metric} {run}"]),
                    )
                    for run in ("Base", "G1")
                }
                orders = {run: _order(*v, lower) for run, v in values.items()}
                changed = orders["Base"] != orders["G1"]
                rows.append(
                    [
                        d,
                        f"{a.label} vs {b.label}",
                        metric,
                        f"{values['Base'][0]:.3f} vs {values['Base'][1]:.3f} ({orders['Base']})",
                        f"{values['G1'][0]:.3f} vs {values['G1'][1]:.3f} ({orders['G1']})",
                        CHANGED if changed else "same",
                    ]
                )
                records.append(
                    {
                        "dataset": d,
                        "a": a.label,
                        "b": b.label,
                        "metric": metric,
                        "base_a": values["Base"][0],
                        "base_b": values["Base"][1],
                        "g1_a": values["G1"][0],
                        "g1_b": values["G1"][1],
                        "changes": changed,
                    }
                )
    titles = ["Dataset", "Methods (A vs B)", "Metric", "Base", "G1", "Ranking"]
    columns = pd.MultiIndex.from_tuples([("", t) for t in titles[1:]])
    frame = pd.DataFrame([r[1:] for r in rows], columns=columns, dtype=object)
    return ReportTable(
        key="rclicks-ranking",
        title="RClicks robustness. Pairwise rankings: official clicker (base) vs G1",
        display=frame,
        bold=pd.DataFrame(False, index=frame.index, columns=columns),
        titles=pd.DataFrame("", index=frame.index, columns=columns),
        rows=tuple(RowStyle(r[0], "measured") for r in rows),
        data=pd.DataFrame(records),
        notes=(
            f"{CHANGED}: the better of the two methods under the official clicker is not the "
            "better one under G1 (RClicks' least likely clicks), or a tie breaks (better: lower "
            "NoC@90, higher IoU-AUC).",
        ),
    )


def _order(a: float, b: float, lower_is_better: bool) -> str:
    if a == b:
        return "tie"
    a_better = a < b if lower_is_better else a > b
    return "A better" if a_better else "B better"


def fig6_curves(sets: list[RobustnessSet]) -> FigureImage | None:
    """IoU@k of the base run, G1 and G10 per dataset (one panel each), bootstrap bands."""
    curves = {s.label: robustness.iou_curves(s.runs) for s in sets}
    datasets = list(dict.fromkeys(d for c in curves.values() for d in c["dataset"]))
    if not datasets:
        return None
    colors = method_colors([s.label for s in sets])
    styles = {"base": "-", "G1": ":", "G10": "--"}
    with sns.axes_style("whitegrid"):
        fig, axes = _grid(len(datasets))
        for ax, dataset in zip(axes, datasets):
            for label, frame in curves.items():
                for run, style in styles.items():
                    part = frame[(frame["dataset"] == dataset) & (frame["run"] == run)]
                    if part.empty:
                        continue
                    k = part["click"].to_numpy()
                    ax.plot(
                        k,
                        100 * part["mean"].to_numpy(),
                        style,
                        color=colors[label],
                        label=f"{label} {run}",
                    )
                    ax.fill_between(
                        k,
                        100 * part["lo"].to_numpy(),
                        100 * part["hi"].to_numpy(),
                        color=colors[label],
                        alpha=0.12,
                        lw=0,
                    )
            ax.set_xlabel("Number of clicks")
            ax.set_ylabel("IoU@k (%)")
            ax.set_title(dataset)
        axes[0].legend(fontsize=7, loc="lower right")
    return FigureImage(
        "figure-rclicks",
        "RClicks Fig. 6. IoU@k under the official clicker (base), G1 and G10",
        "Mean IoU over instances after each click; solid: base (official clicker), dotted: G1 "
        "(least likely realistic clicks), dashed: G10 (most likely); shaded: 95% percentile "
        "bootstrap CI over instances.",
        png_bytes(fig),
    )


def flagged_pairs(table: ReportTable) -> int:
    data = table.data
    return int(np.count_nonzero(data["changes"])) if len(data) else 0
