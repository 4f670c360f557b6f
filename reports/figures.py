"""The paper's figures as PNG bytes: Figure 1 (NoC@90 vs GFLOPs), Figures 3/5/9 (mIoU@k
curves) and Figure 4 (IoU@k histograms). Figures are drawn on `matplotlib.figure.Figure`
objects (no pyplot state), so building a report never opens a window or leaks figures."""

from __future__ import annotations

import base64
import io
import math
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


def run_gflops(run: Run) -> float | None:
    """GFLOPs in the paper's convention from the run's profile.csv (first matching row)."""
    profile = run.profile
    if profile is None or "gflops_paper" not in profile.columns:
        return None
    rows = profile
    if "model" in profile.columns and (profile["model"].astype(str) == run.model_name).any():
        rows = profile[profile["model"].astype(str) == run.model_name]
    values = rows["gflops_paper"].dropna()
    return float(values.iloc[0]) if not values.empty else None


def noc_vs_gflops(
    runs: list[Run], summaries: dict[str, pd.DataFrame], datasets: list[str]
) -> FigureImage | None:
    """Figure 1: one panel per dataset, bubble area proportional to GFLOPs."""
    gflops = {run.label: run_gflops(run) for run in runs}
    have = [run for run in runs if gflops[run.label] is not None]
    missing = [run.label for run in runs if gflops[run.label] is None]
    panels = [d for d in datasets if any(d in summaries[r.label].index for r in have)]
    if not have or not panels:
        return None
    colors = method_colors([r.label for r in runs])
    largest = max(gflops[r.label] for r in have)
    with sns.axes_style("whitegrid"):
        fig, axes = _grid(len(panels))
        for ax, dataset in zip(axes, panels):
            for run in have:
                summary = summaries[run.label]
                if dataset not in summary.index:
                    continue
                x, y = gflops[run.label], float(summary.at[dataset, "NoC@90"])
                area = 2500 * x / largest  # marker area in pt^2, proportional
                ax.scatter([x], [y], s=area, color=colors[run.label], alpha=0.6, edgecolor="k")
                ax.annotate(
                    run.label, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8
                )
            xs = [gflops[r.label] for r in have]
            if max(xs) / max(min(xs), 1e-9) > 20:
                ax.set_xscale("log")
            ax.set_xlabel("GFLOPs (paper convention)")
            ax.set_ylabel("NoC@90")
            ax.set_title(dataset)
            ax.margins(0.25)
    caption = (
        "Bubble area is proportional to GFLOPs (from profile.csv, paper convention); "
        f"the largest bubble is {largest:.2f} GFLOPs."
    )
    if missing:
        caption += " Not shown (no GFLOPs in profile.csv): " + ", ".join(missing) + "."
    return FigureImage("figure1", "Figure 1. NoC@90 vs GFLOPs", caption, png_bytes(fig))


def miou_curves(
    runs: list[Run], summaries: dict[str, pd.DataFrame], datasets: list[str]
) -> FigureImage | None:
    """Figures 3/5/9: mIoU after each click, one panel per dataset, one line per method."""
    panels = [d for d in datasets if any(d in s.index for s in summaries.values())]
    if not panels:
        return None
    colors = method_colors([r.label for r in runs])
    with sns.axes_style("whitegrid"):
        fig, axes = _grid(len(panels))
        for ax, dataset in zip(axes, panels):
            for run in runs:
                summary = summaries[run.label]
                if dataset not in summary.index:
                    continue
                cols = [c for c in summary.columns if c.startswith("mIoU@")]
                ks = sorted(int(c.split("@")[1]) for c in cols)
                values = [100 * float(summary.at[dataset, f"mIoU@{k}"]) for k in ks]
                ax.plot(
                    ks, values, marker="o", markersize=3, color=colors[run.label], label=run.label
                )
            ax.set_xlabel("Number of clicks")
            ax.set_ylabel("mIoU (%)")
            ax.set_title(dataset)
            ax.set_xticks(range(1, max(r.max_clicks for r in runs) + 1, 2))
        axes[0].legend(fontsize=8, loc="lower right")
    return FigureImage(
        "figure-miou",
        "Figures 3/5/9. mIoU@k convergence",
        "Mean IoU over instances after each click (bench.metrics.summarize).",
        png_bytes(fig),
    )


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
            ax.legend(fontsize=8, loc="upper left")
    return FigureImage(
        f"figure4-k{k}",
        f"Figure 4. IoU@{k} histograms",
        f"Share of instances per IoU bin (width 0.05) after click {k}.",
        png_bytes(fig),
    )
