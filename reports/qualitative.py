"""Figure 7: image, ground truth and prediction with its clicks for the best, median and
worst instance of each method and dataset.

Instances are ranked by NoC@90 (then by mean IoU over the clicks), the prediction is the one
after the click that reached 90 % IoU (or after the last click), read from the masks that
`bench run --save-masks` stored. Images and ground truth come from the dataset itself; when
the masks or the data are missing the panel is skipped and the report says why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bench import metrics
from bench.datasets import get_dataset, list_samples
from bench.reports.figures import FigureImage, png_bytes
from bench.reports.runs import Run
from bench.sample import IGNORE, Sample, SampleError
from bench.store import load_masks

POSITIVE_COLOR = "#1db954"
NEGATIVE_COLOR = "#e8112d"


DISPLAY_SIDE = 1024
"""Longest side, in pixels, of the images a panel draws (each subplot is ~3 inches wide)."""


@dataclass(frozen=True)
class Pick:
    rank: str  # "best" | "median" | "worst"
    sample_id: str
    noc90: int
    click: int  # prediction shown: after this click
    iou: float
    reached: bool = True  # the instance reached 90 % IoU within its clicks

    @property
    def caption(self) -> str:
        noc = f"NoC@90 {self.noc90}" if self.reached else f"90 % not reached in {self.click}"
        return f"after click {self.click}: IoU {self.iou:.3f}, {noc}"


def pick_instances(trajectories: pd.DataFrame, max_clicks: int) -> list[Pick]:
    """Best, median and worst instance of one dataset (fewer when it has fewer instances)."""
    ids, seqs = metrics.iou_matrix(trajectories)
    if not ids:
        return []
    nocs = metrics.nocs(seqs, metrics.official_threshold(0.90), max_clicks)
    order = sorted(range(len(ids)), key=lambda i: (nocs[i], -float(np.nanmean(seqs[i]))))
    chosen = {"best": order[0], "median": order[len(order) // 2], "worst": order[-1]}
    if chosen["median"] in (chosen["best"], chosen["worst"]):
        del chosen["median"]  # too few instances for a distinct median
    if chosen["worst"] == chosen["best"]:
        del chosen["worst"]
    threshold = metrics.official_threshold(0.90)
    picks = []
    for rank, i in chosen.items():
        click = int(min(nocs[i], len(seqs[i])))
        reached = bool(np.any(np.asarray(seqs[i], np.float32) >= np.float32(threshold)))
        picks.append(Pick(rank, ids[i], int(nocs[i]), click, float(seqs[i][click - 1]), reached))
    return picks


def _shrunk(sample: Sample, mask: np.ndarray, clicks: pd.DataFrame):
    """Image, ground truth, mask and clicks at most `DISPLAY_SIDE` pixels on a side (every
    n-th pixel: what a panel can show anyway), so a huge image costs no more than a small one."""
    step = max(1, -(-max(sample.gt.shape) // DISPLAY_SIDE))
    if step == 1:
        return sample.image, sample.gt, mask, clicks
    clicks = clicks.assign(x=clicks["x"] / step, y=clicks["y"] / step)
    return sample.image[::step, ::step], sample.gt[::step, ::step], mask[::step, ::step], clicks


def load_sample(run: Run, cli_name: str, sample_id: str, data_root: Path | None) -> Sample:
    """The evaluated instance, from `--data-root` or else the root the manifest recorded."""
    spec = get_dataset(cli_name)
    recorded = run.dataset_info(cli_name).get("root")
    if data_root is not None:
        refs = list_samples(cli_name, data_root)
    elif recorded and Path(recorded).is_dir():
        refs = spec.list_samples(Path(recorded))
    else:
        refs = list_samples(cli_name)
    for ref in refs:
        if ref.id == sample_id or sample_id.startswith(ref.id):
            for sample in ref.load():
                if sample.id == sample_id:
                    return sample
    raise FileNotFoundError(f"sample {sample_id!r} is not in dataset {cli_name!r} any more")


def _overlay(ax, image: np.ndarray, mask: np.ndarray, color: tuple[float, float, float]) -> None:
    rgba = np.zeros((*mask.shape, 4), dtype=np.float32)
    rgba[mask] = (*color, 0.5)
    ax.imshow(image)
    ax.imshow(rgba)


def _panel(picks: list[tuple[Pick, Sample, np.ndarray, pd.DataFrame]], title: str) -> Figure:
    fig = Figure(figsize=(9.6, 2.9 * len(picks)), layout="constrained")
    axes = fig.subplots(len(picks), 3, squeeze=False)
    fig.suptitle(title, fontsize=11)
    for row, (pick, sample, full_mask, full_clicks) in zip(axes, picks):
        image, gt, mask, clicks = _shrunk(sample, full_mask, full_clicks)
        row[0].imshow(image)
        row[0].set_title(f"{pick.rank}: {pick.sample_id}", fontsize=9)
        _overlay(row[1], image, gt == 1, (0.1, 0.4, 0.95))
        ignore = np.zeros((*gt.shape, 4), dtype=np.float32)
        ignore[gt == IGNORE] = (0.5, 0.5, 0.5, 0.7)
        row[1].imshow(ignore)
        row[1].set_title("ground truth (grey: ignored)", fontsize=9)
        _overlay(row[2], image, mask, (0.1, 0.85, 0.3))
        for positive, color in ((True, POSITIVE_COLOR), (False, NEGATIVE_COLOR)):
            shown = clicks[clicks["positive"] == positive]
            row[2].scatter(
                shown["x"], shown["y"], s=40, c=color, edgecolors="white", linewidths=1.2
            )
        row[2].set_title(pick.caption, fontsize=9)
        for ax in row:
            ax.set_axis_off()
    return fig


def qualitative_figures(
    runs: Iterable[Run], data_root: Path | None
) -> tuple[list[FigureImage], list[str]]:
    """One figure per (method, dataset) with saved masks, and notes for the ones skipped."""
    figures, notes = [], []
    for run in runs:
        if not (run.path / "masks").is_dir():
            notes.append(
                f"{run.label}: no saved masks (run `bench run --save-masks` into a new --out, "
                "or with --overwrite)."
            )
            continue
        for cli_name in run.datasets():
            rows = run.trajectories[run.trajectories["dataset"] == cli_name]
            panels = []
            try:
                for pick in pick_instances(rows, run.max_clicks):
                    mask_file = run.masks_path(cli_name, pick.sample_id)
                    if not mask_file.is_file():
                        notes.append(f"{run.label} / {cli_name}: {mask_file.name} not saved.")
                        continue
                    mask = load_masks(mask_file, pick.click)  # only the mask shown
                    sample = load_sample(run, cli_name, pick.sample_id, data_root)
                    if mask.shape != sample.gt.shape:
                        notes.append(
                            f"{run.label} / {cli_name} / {pick.sample_id}: saved mask "
                            f"{mask.shape} does not match the image {sample.gt.shape}; skipped."
                        )
                        continue
                    traj = rows[rows["sample_id"] == pick.sample_id]
                    clicks = traj[traj["click"] <= pick.click]
                    panels.append((pick, sample, mask, clicks))
            except (FileNotFoundError, KeyError, OSError, SampleError) as exc:
                notes.append(f"{run.label} / {cli_name}: dataset not available ({exc}); skipped.")
                continue
            if panels:
                title = f"{run.label} on {run.dataset_label(cli_name)}"
                figures.append(
                    FigureImage(
                        f"figure7-{len(figures)}",
                        f"Figure 7. {title}",
                        "Best, median and worst instance by NoC@90. Green dots: positive "
                        "clicks; red: negative.",
                        png_bytes(_panel(panels, title)),
                    )
                )
    return figures, notes
