"""RClicks' robustness statistics: how much a method's numbers move when the clicks come from
realistic users instead of the error-centre clicker (Antonov et al., NeurIPS 2024, Sec. 5 and
Tables 4, 9-12; emb-ai/rclicks `compute_benchmark_metrics.ipynb`, cells 7-11).

Inputs are per-instance values that `bench.metrics` computes from the run folders: NoC@90 and
NoF@90 (0/1) and IoU-AUC (RClicks' "IoU@20": `np.trapz(ious) / 19`) for the base run (the
official clicker) and for each of the ten probability-mass groups G1 (least likely clicks) ..
G10 (most likely). Every figure is computed as the notebook computes it (`figures`), with the
float32 casts where the notebook casts; with S[x] the per-instance values of run x (for NoF,
the 1-element array holding the dataset's count of failures):

- mean of G1..G10 and of Base;
- `Sample` = mean over instances of the mean over the 10 groups (`G_mean@10`), `Sample STD` =
  mean over instances of the population std across groups (`G_std@10`); G = the 10 x N float32
  matrix;
- ΔSB (sample vs base) = mean((G_mean - Base) / Base) for NoC (a fraction; the paper prints
  x100), mean(G_mean - Base) for IoU-AUC and NoF;
- ΔGR (group range) = mean((G1 - G10) / G10) for NoC, mean(G1 - G10) otherwise;
- ΔHH (half vs half) = mean((H1 - H2) / H2) for NoC, mean(H1 - H2) otherwise, with H1 = float32
  [G1..G5], H2 = float32 [G6..G10] paired G1-G6, ..., G5-G10;
- NSR = mean over instances of std_g(AUC) / mean_g(AUC) (float32 AUCs, population std).

A bootstrap CI over instances (`bench.stats.bootstrap_means`, one call, the same resamples for
every figure) accompanies each figure that is a mean of per-instance values; NoF figures are
counts (differences of counts), so they have none.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import stats

GROUPS = tuple(f"G{g}" for g in range(1, 11))
BASE = "Base"
METRICS = ("NoC@90", "NoF@90", "IoU-AUC")
"""The per-instance metrics (`bench.metrics` names) RClicks reports, in the paper's order."""

COUNT_METRICS = frozenset({"NoF@90"})
RELATIVE_METRICS = frozenset({"NoC@90"})
"""ΔSB, ΔGR and ΔHH are relative changes for NoC and plain differences for IoU and NoF."""

DELTAS = ("ΔSB", "ΔGR", "ΔHH")
LOWER_IS_BETTER = {"NoC@90": True, "NoF@90": True, "IoU-AUC": False}


def group_of(low: float, high: float) -> str | None:
    """`G3` for the mass slice (0.2, 0.3); None for any other slice."""
    for g in range(1, 11):
        if math.isclose(low, (g - 1) / 10, abs_tol=1e-9) and math.isclose(
            high, g / 10, abs_tol=1e-9
        ):
            return f"G{g}"
    return None


@dataclass(frozen=True)
class Statistics:
    """The notebook's figures of one metric (`modes`, named as its cell-8 modes without the
    suffix) and, for a mean metric, the per-instance columns each mean figure averages."""

    modes: dict[str, float]
    columns: dict[str, np.ndarray]


def _mean(values: np.ndarray) -> float:
    return float(np.asarray(values).mean())


def notebook_statistics(base: np.ndarray, groups: Sequence[np.ndarray]) -> Statistics:
    """Cell 8 of `compute_benchmark_metrics.ipynb` for one suffix: `base` and each of the 10
    `groups` are S[x] (per-instance values, or a 1-element count array for NoF)."""
    if len(groups) != len(GROUPS):
        raise ValueError(f"robustness needs {len(GROUPS)} groups, got {len(groups)}")
    s = [np.asarray(g) for g in groups]
    base = np.asarray(base)
    n = base.shape[0]
    if any(g.shape != (n,) for g in s):
        raise ValueError("robustness: every group must hold the base run's instances")
    h1 = np.array(s[:5]).astype(np.float32)
    h2 = np.array(s[5:]).astype(np.float32)
    g = np.vstack([h1, h2])
    g_mean, g_std = g.mean(axis=0), g.std(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        columns = {
            BASE: base.astype(np.float64),
            **{name: v.astype(np.float64) for name, v in zip(GROUPS, s)},
            "G1 - G10": (s[0] - s[9]).astype(np.float64),
            "(G1 - G10) / G10": (s[0] - s[9]) / s[9],
            "H1 - H2": (h1 - h2).astype(np.float64).mean(axis=0),
            "(H1 - H2) / H2": ((h1 - h2) / h2).astype(np.float64).mean(axis=0),
            "G_mean@10": g_mean.astype(np.float64),
            "G_std@10": g_std.astype(np.float64),
            "(G_mean - Base) / Base": (g_mean - base) / base,
            "G_mean - Base": g_mean - base,
        }
        modes = {name: _mean(col) for name, col in columns.items()}
        # The notebook takes these means over float32 arrays (5N elements for H1 - H2).
        modes["H1 - H2"] = _mean(h1 - h2)
        modes["(H1 - H2) / H2"] = _mean((h1 - h2) / h2)
        modes["G_mean@10"] = _mean(g_mean)
        modes["G_std@10"] = _mean(g_std)
    return Statistics(modes, columns)


def nsr_per_instance(groups: Sequence[np.ndarray], cast: type = np.float32) -> np.ndarray:
    """Noise-to-signal ratio per instance, std / mean across the 10 groups (population std):
    cell 7's `NSR_IOU` (`cast` float32 for the AUCs, as the notebook casts; float64 for NoC)."""
    values = np.array([np.asarray(g) for g in groups]).astype(cast)
    with np.errstate(divide="ignore", invalid="ignore"):
        return values.std(axis=0) / values.mean(axis=0)


def user_first_click(samples: Sequence[Sequence[float]]) -> tuple[np.ndarray, ...]:
    """Cell 7's `User@1_IOU` from each instance's first-click IoUs of several (real or
    sampled) users: per-instance (mean, std, std / (mean + 1e-9)). Needs RClicks' human
    clicks (or clickability samples); the means of the three are `User IoU@1`, `User STD
    IoU@1` and `User NSR IoU@1`."""
    means = np.array([np.mean(v) for v in samples])
    stds = np.array([np.std(v) for v in samples])
    return means, stds, stds / (means + 1e-9)


# --- one dataset's robustness row --------------------------------------------------------------


def _delta_modes(metric: str) -> dict[str, str]:
    if metric in RELATIVE_METRICS:
        return {
            "ΔSB": "(G_mean - Base) / Base",
            "ΔGR": "(G1 - G10) / G10",
            "ΔHH": "(H1 - H2) / H2",
        }
    return {"ΔSB": "G_mean - Base", "ΔGR": "G1 - G10", "ΔHH": "H1 - H2"}


def _aligned(base: pd.DataFrame, groups: Mapping[str, pd.DataFrame]) -> None:
    missing = [g for g in GROUPS if g not in groups]
    if missing:
        raise ValueError(f"robustness: groups {', '.join(missing)} are missing")
    for name in GROUPS:
        if list(groups[name].index) != list(base.index):
            raise ValueError(
                f"robustness: group {name} holds other instances than the base run "
                f"({len(groups[name])} vs {len(base)}); every run must cover the same entries"
            )


def robustness_row(
    base: pd.DataFrame,
    groups: Mapping[str, pd.DataFrame],
    seed: int = stats.SEED,
    n_resamples: int = stats.N_RESAMPLES,
) -> dict[str, float]:
    """Every figure of one dataset with its bootstrap CI (`<figure>_lo` / `<figure>_hi`).

    `base` and each of `groups` (G1..G10) hold one dataset's per-instance values (rows: the
    same sample ids in the same order; columns: `METRICS`). Figure names: `NoC@90 Base`,
    `NoC@90 G3`, `NoC@90 Sample`, `NoC@90 Sample STD`, `NoC@90 ΔSB` / `ΔGR` / `ΔHH`,
    `IoU-AUC NSR`; NoC deltas are fractions.
    """
    _aligned(base, groups)
    row: dict[str, float] = {"instances": len(base)}
    intervals: dict[str, np.ndarray] = {}
    for metric in METRICS:
        per_group = [groups[g][metric].to_numpy() for g in GROUPS]
        base_values = base[metric].to_numpy()
        if metric in COUNT_METRICS:
            counts = [np.array([np.sum(v)], dtype=np.int64) for v in per_group]
            st = notebook_statistics(np.array([np.sum(base_values)], dtype=np.int64), counts)
        else:
            if metric == "NoC@90":
                per_group = [v.astype(np.int64) for v in per_group]
                base_values = base_values.astype(np.int64)
            st = notebook_statistics(base_values, per_group)
        names = {BASE: "Base", **{g: g for g in GROUPS}}
        names.update({"G_mean@10": "Sample", "G_std@10": "Sample STD"})
        names.update({mode: delta for delta, mode in _delta_modes(metric).items()})
        for mode, label in names.items():
            figure = f"{metric} {label}"
            row[figure] = st.modes[mode]
            if metric not in COUNT_METRICS:
                intervals[figure] = st.columns[mode]
        if metric == "IoU-AUC":
            nsr = nsr_per_instance(per_group)
            row[f"{metric} NSR"] = _mean(nsr)
            intervals[f"{metric} NSR"] = nsr.astype(np.float64)
    usable = {k: v for k, v in intervals.items() if np.isfinite(v).all()}
    low, high = stats.bootstrap_means(
        np.column_stack(list(usable.values())) if usable else np.zeros((len(base), 0)),
        seed,
        n_resamples,
    )
    bounds = dict(zip(usable, zip(low, high)))
    out: dict[str, float] = {}
    for key, value in row.items():
        out[key] = value
        if key in intervals:
            lo, hi = bounds.get(key, (math.nan, math.nan))
            out[f"{key}_lo"], out[f"{key}_hi"] = float(lo), float(hi)
    return out


def figure_names() -> list[str]:
    """The figure columns of `robustness.csv`, in order (each mean figure also has _lo/_hi)."""
    names = []
    for metric in METRICS:
        names += [f"{metric} {x}" for x in ("Base", *GROUPS, "Sample", "Sample STD", *DELTAS)]
        if metric == "IoU-AUC":
            names.append(f"{metric} NSR")
    return names


# --- a robustness folder: the eleven runs and robustness.csv -----------------------------------

PLAN = "robustness.json"
TABLE = "robustness.csv"


def click_model_of(prior: str, group: int, seed: int) -> str:
    """The `--click-model` text of group G (seed omitted when it is RClicks' default 42)."""
    text = f"rclicks:prior={prior},group={group}"
    return text if seed == 42 else f"{text},seed={seed}"


def plan_runs(
    out: Path, prior: str, seed: int = 42, base: Path | None = None
) -> dict[str, tuple[Path, str]]:
    """label -> (run folder, click model): `base` (official) and G1..G10 under `out`.

    The click models are parsed (and a plugin prior imported) here, so that a typo fails
    before the first run starts."""
    from bench.clicks import make_click_model

    runs = {"base": (Path(base) if base is not None else out / "base", "official")}
    for g in range(1, 11):
        runs[f"G{g}"] = (out / f"G{g}", click_model_of(prior, g, seed))
    make_click_model(runs["G1"][1])
    return runs


def write_plan(out: Path, runs: Mapping[str, tuple[Path, str]], prior: str, seed: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    plan = {
        "prior": prior,
        "seed": seed,
        "runs": {
            label: {"dir": os.path.relpath(folder, out), "click_model": cm}
            for label, (folder, cm) in runs.items()
        },
    }
    (out / PLAN).write_text(json.dumps(plan, indent=2) + "\n")


def read_plan(out: Path) -> dict[str, Any]:
    path = Path(out) / PLAN
    try:
        plan = json.loads(path.read_text())
        labels = set(plan["runs"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a robustness plan ({exc})") from None
    missing = {"base", *GROUPS} - labels
    if missing:
        raise ValueError(f"{path}: runs {', '.join(sorted(missing))} are missing")
    return plan


def is_robustness_dir(folder: Path) -> bool:
    return (Path(folder) / PLAN).is_file()


@dataclass(frozen=True)
class RobustnessRuns:
    """The trajectories and manifests of one robustness folder's runs, read once."""

    out: Path
    prior: str
    model: str
    trajectories: dict[str, pd.DataFrame]  # label (base, G1..G10) -> trajectories
    manifests: dict[str, dict[str, Any]]

    @property
    def max_clicks(self) -> int:
        return int(self.manifests["base"]["protocol"]["max_clicks"])


def read_runs(out: Path) -> RobustnessRuns:
    """Every run of a robustness folder; each must be finished (status complete)."""
    from bench.store import MANIFEST, read_trajectories
    from bench.store.manifest import status_is_complete

    out = Path(out)
    plan = read_plan(out)
    trajectories, manifests = {}, {}
    for label in ("base", *GROUPS):
        folder = (out / plan["runs"][label]["dir"]).resolve()
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{folder / MANIFEST}: run {label} cannot be read ({exc})") from None
        if not status_is_complete(manifest.get("status")):
            raise ValueError(f"{folder}: run {label} is {manifest.get('status')!r}, not complete")
        manifests[label] = manifest
        trajectories[label] = read_trajectories(folder)
    names = {m["model"]["name"] for m in manifests.values()}
    if len(names) != 1:
        raise ValueError(f"{out}: the runs evaluate different models ({', '.join(sorted(names))})")
    return RobustnessRuns(out, str(plan["prior"]), names.pop(), trajectories, manifests)


def robustness_table(runs: RobustnessRuns, seed: int = stats.SEED) -> pd.DataFrame:
    """One row per dataset (base run's order): every figure of `robustness_row`."""
    from bench import metrics

    per = {
        label: metrics.per_instance(frame, list(METRICS), runs.max_clicks)
        for label, frame in runs.trajectories.items()
    }
    rows = {}
    for dataset in dict.fromkeys(per["base"].index.get_level_values("dataset")):
        parts = {}
        for label, frame in per.items():
            if dataset not in frame.index.get_level_values("dataset"):
                raise ValueError(f"{runs.out}: run {label} has no {dataset} instances")
            parts[label] = frame.loc[dataset]
        row = {"model": runs.model, "prior": runs.prior}
        row.update(robustness_row(parts["base"], {g: parts[g] for g in GROUPS}, seed))
        rows[dataset] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "dataset"
    table["instances"] = table["instances"].astype(int)
    return table


def write_robustness(out: Path) -> pd.DataFrame:
    """Read the runs of `out`, write `out/robustness.csv`, return the table."""
    table = robustness_table(read_runs(out))
    table.to_csv(Path(out) / TABLE)
    return table


def iou_curves(runs: RobustnessRuns, labels: Sequence[str] = ("base", "G1", "G10")) -> pd.DataFrame:
    """Fig. 6 of RClicks: mean IoU@k per click for some runs, with a bootstrap band over
    instances. Rows: (dataset, run, click) -> mean, lo, hi."""
    records = []
    for label in labels:
        frame = runs.trajectories[label]
        for dataset, part in frame.groupby("dataset", sort=False):
            matrix = part.pivot(index="sample_id", columns="click", values="iou").to_numpy(float)
            low, high = stats.bootstrap_means(matrix, n_resamples=2000)
            for k, (m, lo, hi) in enumerate(zip(matrix.mean(axis=0), low, high), start=1):
                records.append((dataset, label, k, float(m), float(lo), float(hi)))
    return pd.DataFrame(records, columns=["dataset", "run", "click", "mean", "lo", "hi"])
