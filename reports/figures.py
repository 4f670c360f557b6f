"""The paper's figures as PNG bytes: Figure 1 (NoC@90 vs GFLOPs), Figures 3/5/9 (mIoU@k
curves) and Figure 4 (IoU@k histograms). Figures are drawn on `matplotlib.figure.Figure`
objects (no pyplot state), so building a report never opens a window or leaks figures."""

from __future__ import annotations

import base64
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from bench import metrics
from bench.reports.runs import Run

DPI = 100


@dataclass(frozen=True)
class FigureImage:
    key: str
    title: str
    caption: str
    png: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def method_colors(labels: list[str]) -> dict[str, tuple[float, float, float]]:
    """One colour per method, the same in every figure (colour-blind safe palette)."""
    palette = sns.color_palette("colorblind", max(len(labels), 1))
    return {label: palette[i % len(palette)] for i, label in enumerate(labels)}


def _grid(n: int, width: float = 4.2, height: float = 3.2) -> tuple[Figure, list]:
    cols = min(3, max(n, 1))
    rows = math.ceil(max(n, 1) / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


LEGEND_INSIDE_MAX = 8
"""Up to this many entries a legend sits inside the axes; more would cover the data, so the
legend moves to the right of the figure."""


def place_legend(ax, fig: Figure, loc: str) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if len(labels) <= LEGEND_INSIDE_MAX:
        ax.legend(fontsize=8, loc=loc)
    else:
        fig.legend(handles, labels, fontsize=8, loc="outside right upper")


def run_gflops(run: Run) -> float | None:
    """GFLOPs in the paper's convention from the run's profile.csv (first matching row); for
    a method without one (a plugin profiled through its calls) the FLOPs counted per click."""
    found = run_gflops_and_convention(run)
    return None if found is None else found[0]


def run_gflops_and_convention(run: Run) -> tuple[float, str] | None:
    """(GFLOPs, "paper" or "per click") from the run's profile.csv (see `run_gflops`)."""
    profile = run.profile
    if profile is None:
        return None
    rows = profile
    if "model" in profile.columns and (profile["model"].astype(str) == run.model_name).any():
        rows = profile[profile["model"].astype(str) == run.model_name]
    for column, convention in (("gflops_paper", "paper"), ("gflops_full", "per click")):
        if column in rows.columns:
            values = pd.to_numeric(rows[column], errors="coerce").dropna()
            if not values.empty:
                return float(values.iloc[0]), convention
    return None


def published_points(
    runs: list[Run], datasets: list[str], published: Sequence[str] | str | None
) -> pd.DataFrame:
    """The paper's NoC@90 with Table 5 GFLOPs (`bench.reports.reference.published_paper_rows`)
    for the runs' own references and the selected published-only methods (`published`, as
    `bench.reports.tables.published_selector` reads it); one row per method and dataset."""
    from bench.reports.reference import published_paper_rows
    from bench.reports.tables import published_selector

    pick = published_selector(published)
    own = {r.reference for r in runs if r.reference}
    rows = published_paper_rows(2)
    rows = rows[
        (rows["metric"] == "NoC@90")
        & rows["dataset"].isin(datasets)
        & rows["gflops"].notna()
        & rows["reference"].map(lambda ref: ref in own or pick(str(ref)))
    ]
    return rows.reset_index(drop=True)


def _published_label(row: pd.Series) -> str:
    backbone = "" if pd.isna(row["backbone"]) else f" {row['backbone']}"
    return f"{row['method']}{backbone} ({row['reference']})"


def noc_vs_gflops(
    runs: list[Run],
    summaries: dict[str, pd.DataFrame],
    datasets: list[str],
    published: Sequence[str] | str | None = None,
) -> FigureImage | None:
    """Figure 1: one panel per dataset, bubble area proportional to GFLOPs; our runs filled
    with their 95% CI as a vertical bar, the paper's methods as hollow bubbles."""
    gflops = {run.label: run_gflops(run) for run in runs}
    have = [run for run in runs if gflops[run.label] is not None]
    missing = [run.label for run in runs if gflops[run.label] is None]
    paper = published_points(runs, datasets, published)
    panels = [
        d
        for d in datasets
        if any(d in summaries[r.label].index for r in have) or (paper["dataset"] == d).any()
    ]
    if not panels:
        return None
    colors = method_colors([r.label for r in runs])
    largest = max([gflops[r.label] for r in have] + paper["gflops"].astype(float).tolist())
    # Published points carry short keys (P1, P2, ...) listed in the caption: two dozen full
    # method names in a panel would hide the points.
    keys = {ref: f"P{i + 1}" for i, ref in enumerate(dict.fromkeys(paper["reference"]))}
    with sns.axes_style("whitegrid"):
        fig, axes = _grid(len(panels))
        for ax, dataset in zip(axes, panels):
            xs = []
            for run in have:
                summary = summaries[run.label]
                if dataset not in summary.index:
                    continue
                x, y = gflops[run.label], float(summary.at[dataset, "NoC@90"])
                if math.isnan(y):  # unavailable (an early stop below 0.90)
                    continue
                area = 2500 * x / largest  # marker area in pt^2, proportional
                ax.scatter([x], [y], s=area, color=colors[run.label], alpha=0.6, edgecolor="k")
                if "NoC@90_lo" in summary.columns and not pd.isna(summary.at[dataset, "NoC@90_lo"]):
                    low, high = summary.at[dataset, "NoC@90_lo"], summary.at[dataset, "NoC@90_hi"]
                    ax.errorbar([x], [y], yerr=[[y - low], [high - y]], color="k", capsize=3, lw=1)
                ax.annotate(
                    run.label, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8
                )
                xs.append(x)
            for _, row in paper[paper["dataset"] == dataset].iterrows():
                x, y = float(row["gflops"]), float(row["value"])
                ax.scatter(
                    [x], [y], s=2500 * x / largest, facecolors="none", edgecolors="0.35", lw=1.2
                )
                ax.annotate(
                    keys[row["reference"]],
                    (x, y),
                    textcoords="offset points",
                    # alternate above/below so neighbours (one backbone, two train sets) part
                    xytext=(4, -8 if int(keys[row["reference"]][1:]) % 2 else 4),
                    fontsize=7,
                    color="0.3",
                )
                xs.append(x)
            if xs and max(xs) / max(min(xs), 1e-9) > 20:
                ax.set_xscale("log")
            ax.set_xlabel("GFLOPs (paper convention)")
            ax.set_ylabel("NoC@90")
            ax.set_title(dataset)
            ax.margins(0.25)
    caption = (
        "Bubble area is proportional to GFLOPs (from profile.csv, paper convention); "
        f"the largest bubble is {largest:.2f} GFLOPs. Bars: 95% bootstrap CI of NoC@90."
    )
    if not paper.empty:
        first = paper.drop_duplicates("reference")
        caption += (
            " Hollow grey bubbles: published NoC@90 (SimpleClick Table 2) at the GFLOPs "
            "SimpleClick Table 5 gives for a backbone of that name; not measured here: "
            + "; ".join(
                f"{keys[r['reference']]} {_published_label(r)}" for _, r in first.iterrows()
            )
            + "."
        )
    counted = [r.label for r in have if run_gflops_and_convention(r)[1] == "per click"]
    if counted:
        caption += (
            " No paper convention for "
            + ", ".join(counted)
            + ": GFLOPs per click counted by FlopCounterMode around the predictor's calls "
            "(bench profile --model)."
        )
    if missing:
        caption += " Not shown (no GFLOPs in profile.csv): " + ", ".join(missing) + "."
    return FigureImage("figure1", "Figure 1. NoC@90 vs GFLOPs", caption, png_bytes(fig))


def miou_curves(
    runs: list[Run], summaries: dict[str, pd.DataFrame], datasets: list[str], prefix: str = "mIoU"
) -> FigureImage | None:
    """Figures 3/5/9: mIoU after each click (`prefix="mBIoU"`: boundary IoU), one panel per
    dataset, one line per method; a run without values (no `biou` stored) is left out and
    named in the caption."""
    pattern = re.escape(prefix) + r"@\d+"
    without = [
        r.label
        for r in runs
        if not any(
            re.fullmatch(pattern, c) and summaries[r.label][c].notna().any()
            for c in summaries[r.label].columns
        )
    ]
    shown = [r for r in runs if r.label not in without]
    panels = [d for d in datasets if any(d in summaries[r.label].index for r in shown)]
    if not panels:
        return None
    runs = shown
    colors = method_colors([r.label for r in runs])
    with sns.axes_style("whitegrid"):
        fig, axes = _grid(len(panels))
        for ax, dataset in zip(axes, panels):
            for run in runs:
                summary = summaries[run.label]
                if dataset not in summary.index:
                    continue
                cols = [c for c in summary.columns if re.fullmatch(pattern, c)]
                ks = sorted(int(c.split("@")[1]) for c in cols)
                values = [100 * float(summary.at[dataset, f"{prefix}@{k}"]) for k in ks]
                ax.plot(
                    ks, values, marker="o", markersize=3, color=colors[run.label], label=run.label
                )
                if all(f"{prefix}@{k}_lo" in summary.columns for k in ks):
                    low = [100 * float(summary.at[dataset, f"{prefix}@{k}_lo"]) for k in ks]
                    high = [100 * float(summary.at[dataset, f"{prefix}@{k}_hi"]) for k in ks]
                    ax.fill_between(ks, low, high, color=colors[run.label], alpha=0.15, lw=0)
            ax.set_xlabel("Number of clicks")
            ax.set_ylabel(f"{prefix} (%)")
            ax.set_title(dataset)
            ax.set_xticks(range(1, max(r.max_clicks for r in runs) + 1, 2))
        place_legend(axes[0], fig, "lower right")
    if prefix == "mIoU":
        return FigureImage(
            "figure-miou",
            "Figures 3/5/9. mIoU@k convergence",
            "Mean IoU over instances after each click (bench.metrics.summarize); shaded: 95% "
            "percentile bootstrap CI over instances.",
            png_bytes(fig),
        )
    caption = (
        "Mean boundary IoU over instances after each click (band of max(1, round(0.02 x image "
        "diagonal)) pixels, as HQ-SAM and RClicks); shaded: 95% percentile bootstrap CI."
    )
    if without:
        caption += (
            " No boundary IoU stored (runs made before the biou column; `bench rescore RUN` "
            "fills it in from saved masks): " + ", ".join(without) + "."
        )
    return FigureImage("figure-mbiou", "mBIoU@k convergence", caption, png_bytes(fig))


def iou_histograms(
    runs: list[Run], datasets: list[str], k: int, folder_of: dict[tuple[str, str], str]
) -> FigureImage | None:
    """Figure 4: distribution of per-instance IoU after click k, one outline per method."""
    per_dataset: dict[str, dict[str, np.ndarray]] = {}
    for run in runs:
        ious = metrics.iou_at_k(run.trajectories, k)
        for cli_name, values in ious.groupby(level="dataset"):
            folder = folder_of[(run.label, str(cli_name))]
            per_dataset.setdefault(folder, {})[run.label] = values.to_numpy(np.float64)
    panels = [d for d in datasets if d in per_dataset]
    if not panels:
        return None
    colors = method_colors([r.label for r in runs])
    bins = np.linspace(0.0, 1.0, 21)
    with sns.axes_style("whitegrid"):
        fig, axes = _grid(len(panels))
        for ax, dataset in zip(axes, panels):
            for label, values in per_dataset[dataset].items():
                weights = np.full(values.shape, 100.0 / max(len(values), 1))
                ax.hist(
                    values,
                    bins=bins,
                    weights=weights,
                    histtype="step",
                    linewidth=1.8,
                    color=colors[label],
                    label=f"{label} (n={len(values)})",
                )
            ax.set_xlim(0, 1)
            ax.set_xlabel(f"IoU@{k}")
            ax.set_ylabel("Instances (%)")
            ax.set_title(dataset)
            if ax is axes[0]:
                place_legend(ax, fig, "upper left")
            elif len(per_dataset[dataset]) <= LEGEND_INSIDE_MAX:
                ax.legend(fontsize=8, loc="upper left")
    return FigureImage(
        f"figure4-k{k}",
        f"Figure 4. IoU@{k} histograms",
        f"Share of instances per IoU bin (width 0.05) after click {k}.",
        png_bytes(fig),
    )
