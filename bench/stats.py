"""How sure is a number: bootstrap confidence intervals and paired tests on per-instance metrics.

A dataset's NoC@90 is a mean over its instances, so its uncertainty is that of a mean over a
sample of instances: the instances are resampled with replacement (the instance-level percentile
bootstrap, Efron & Tibshirani 1993, ch. 13) with `scipy.stats.bootstrap`. Two methods evaluated
on the same instances are compared pairwise: the per-instance differences carry the comparison
(a hard image is hard for both), so the paired bootstrap resamples instances, keeping the pair,
and `scipy.stats.wilcoxon` tests the differences. A ranking of k >= 3 methods runs k(k-1)/2 such
tests, corrected for multiplicity with Holm's step-down procedure.

Every resampling draws from a generator seeded with `SEED`, so the same trajectories always give
the same intervals. Per-instance values come from `bench.metrics` (never recomputed here).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from bench import metrics

CONFIDENCE_LEVEL = 0.95
N_RESAMPLES = 10_000
SEED = 0
ALPHA = 0.05
CI_METHOD = (
    f"{CONFIDENCE_LEVEL:.0%} percentile bootstrap over instances "
    f"({N_RESAMPLES:,} resamples, seed {SEED}, scipy.stats.bootstrap)"
)
PAIRED_TEST = (
    "paired Wilcoxon signed-rank test on the per-instance differences of the shared instances "
    "(scipy.stats.wilcoxon, zero differences dropped)"
)
NOC_THRESHOLDS = {"NoC@80": 0.80, "NoC@85": 0.85, "NoC@90": 0.90}
NOF_THRESHOLDS = {"NoF@85": 0.85, "NoF@90": 0.90}

# Elements gathered per bootstrap batch (instances x metrics x resamples): ~32 MB of float64,
# so SBD's 6,671 instances fit in memory as well as GrabCut's 50.
_BATCH_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class Interval:
    """A point estimate and its confidence interval (NaN bounds: fewer than two instances)."""

    estimate: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.estimate:.2f} [{self.low:.2f}, {self.high:.2f}]"


@dataclass(frozen=True)
class PairedComparison:
    """Run A minus run B on the instances both evaluated (lower NoC is better, so a negative
    difference favours A)."""

    n: int
    mean_a: float
    mean_b: float
    difference: float  # mean(a - b) == mean(a) - mean(b)
    low: float
    high: float
    p_value: float  # two-sided Wilcoxon signed-rank; 1.0 when every difference is zero
    nonzero: int  # instances whose values differ (the ones the signed-rank test uses)

    @property
    def identical(self) -> bool:
        return self.nonzero == 0

    def significant(self, alpha: float = ALPHA) -> bool:
        return self.p_value < alpha


def _batch_size(n_instances: int, n_metrics: int) -> int:
    return max(1, min(N_RESAMPLES, _BATCH_ELEMENTS // max(1, n_instances * n_metrics)))


def _mean_of_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def bootstrap_means(
    values: np.ndarray, seed: int = SEED, n_resamples: int = N_RESAMPLES
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile CIs of the column means of `values` (instances x metrics), all columns from
    one vectorised `scipy.stats.bootstrap` call. Returns (low, high), one entry per column."""
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim == 1:
        matrix = matrix[:, None]
    n, m = matrix.shape
    if n < 2 or m == 0:
        return np.full(m, np.nan), np.full(m, np.nan)
    result = sps.bootstrap(
        (matrix.T,),
        np.mean,
        n_resamples=n_resamples,
        batch=_batch_size(n, m),
        vectorized=True,
        axis=-1,
        confidence_level=CONFIDENCE_LEVEL,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    ci = result.confidence_interval
    return np.atleast_1d(ci.low).astype(float), np.atleast_1d(ci.high).astype(float)


def mean_interval(values: Sequence[float] | np.ndarray, seed: int = SEED) -> Interval:
    """Mean of one sample with its percentile bootstrap CI."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        raise ValueError("no values: a confidence interval needs at least one instance")
    low, high = bootstrap_means(data, seed)
    return Interval(float(data.mean()), float(low[0]), float(high[0]))


# --- per-instance metrics ------------------------------------------------------------------


def per_instance_metrics(
    trajectories: pd.DataFrame,
    max_clicks: int = metrics.MAX_CLICKS,
    nof_rule: str = "official",
) -> pd.DataFrame:
    """One row per (dataset, sample_id), in stored order: NoC@80/85/90, failure indicators
    NoF@85/90 (0/1, by `nof_rule`) and IoU@k for k up to the dataset's shortest trajectory.

    The dataset means of these columns are `bench.metrics.summarize`'s NoC, NoF / instances
    and mIoU@k (the latter up to float32 rounding: the official mean is taken in float32)."""
    if nof_rule not in metrics.NOF_RULES:
        raise ValueError(f"unknown NoF rule {nof_rule!r}; known: {', '.join(metrics.NOF_RULES)}")
    frames = []
    for dataset, group in trajectories.groupby("dataset", sort=False):
        ids, seqs = metrics.iou_matrix(group)
        if not seqs:
            continue
        columns: dict[str, np.ndarray] = {}
        for name, nominal in NOC_THRESHOLDS.items():
            columns[name] = metrics.nocs(seqs, metrics.official_threshold(nominal), max_clicks)
        for name, nominal in NOF_THRESHOLDS.items():
            thr = metrics.official_threshold(nominal)
            if nof_rule == "official":
                failed = metrics.nocs(seqs, thr, max_clicks) == max_clicks
            else:
                failed = np.array([metrics.nof_never_reached([s], thr) for s in seqs]) == 1
            columns[name] = failed.astype(np.int64)
        n_min = min(len(s) for s in seqs)
        ious = np.stack([s[:n_min] for s in seqs])
        for k in range(1, n_min + 1):
            columns[f"IoU@{k}"] = ious[:, k - 1].astype(np.float64)
        index = pd.MultiIndex.from_arrays(
            [[str(dataset)] * len(ids), ids], names=["dataset", "sample_id"]
        )
        frames.append(pd.DataFrame(columns, index=index))
    if not frames:
        return pd.DataFrame(
            index=pd.MultiIndex.from_arrays([[], []], names=["dataset", "sample_id"])
        )
    return pd.concat(frames)


def _summary_column(per_instance_column: str) -> str:
    """`IoU@5` (per instance) is summarised as `mIoU@5`; NoC/NoF keep their names."""
    return (
        "m" + per_instance_column if per_instance_column.startswith("IoU@") else per_instance_column
    )


def dataset_intervals(per_instance: pd.DataFrame, seed: int = SEED) -> pd.DataFrame:
    """Per dataset, `<metric>_lo` and `<metric>_hi` for every summary metric: NoC as clicks,
    NoF as a count of failed instances (n times the failure-rate interval), mIoU@k as a
    fraction. One bootstrap call per dataset, all metrics on the same resamples."""
    rows = {}
    for dataset, group in per_instance.groupby(level="dataset", sort=False):
        group = group.dropna(axis=1, how="all")
        low, high = bootstrap_means(group.to_numpy(np.float64), seed)
        row: dict[str, float] = {}
        n = len(group)
        for column, lo, hi in zip(group.columns, low, high):
            name = _summary_column(column)
            if column.startswith("NoF@"):  # resampled means are k / n: counts, up to rounding
                lo, hi = float(np.rint(lo * n)), float(np.rint(hi * n))
            row[f"{name}_lo"], row[f"{name}_hi"] = lo, hi
        rows[dataset] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "dataset"
    return frame


def summarize_with_intervals(
    trajectories: pd.DataFrame,
    max_clicks: int = metrics.MAX_CLICKS,
    nof_rule: str = "official",
    seed: int = SEED,
) -> pd.DataFrame:
    """`bench.metrics.summarize` with each metric followed by its `_lo` / `_hi` CI bounds."""
    table = metrics.summarize(trajectories, max_clicks, nof_rule=nof_rule)
    if table.empty:
        return table
    bounds = dataset_intervals(per_instance_metrics(trajectories, max_clicks, nof_rule), seed)
    ordered = []
    for column in table.columns:
        ordered.append(column)
        ordered += [c for c in (f"{column}_lo", f"{column}_hi") if c in bounds.columns]
    return table.join(bounds)[ordered]


# --- paired comparison ---------------------------------------------------------------------


def paired_comparisons(
    a: np.ndarray, b: np.ndarray, seed: int = SEED, n_resamples: int = N_RESAMPLES
) -> list[PairedComparison]:
    """A minus B for each column of two (instances x metrics) arrays whose rows are the same
    instances: the paired bootstrap CI of the mean difference (instances resampled together
    with their pair, all columns on the same resamples) and the Wilcoxon signed-rank p."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim == 1:
        a, b = a[:, None], b[:, None]
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in shape: {a.shape} vs {b.shape}")
    n, m = a.shape
    if n == 0:
        raise ValueError("no shared instance: a paired comparison needs the same instances")
    diffs = a - b
    if n >= 2:
        result = sps.bootstrap(
            (a.T, b.T),
            _mean_of_difference,
            n_resamples=n_resamples,
            batch=_batch_size(n, 2 * m),
            vectorized=True,
            paired=True,
            axis=-1,
            confidence_level=CONFIDENCE_LEVEL,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
        lows = np.atleast_1d(result.confidence_interval.low)
        highs = np.atleast_1d(result.confidence_interval.high)
    else:
        lows = highs = np.full(m, np.nan)
    out = []
    for j in range(m):
        d = diffs[:, j]
        nonzero = int(np.count_nonzero(d))
        if nonzero == 0:
            p_value = 1.0  # nothing to test: identical on every shared instance
        else:
            p_value = float(sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
        out.append(
            PairedComparison(
                n=n,
                mean_a=float(a[:, j].mean()),
                mean_b=float(b[:, j].mean()),
                difference=float(d.mean()),
                low=float(lows[j]),
                high=float(highs[j]),
                p_value=p_value,
                nonzero=nonzero,
            )
        )
    return out


def paired_comparison(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, seed: int = SEED
) -> PairedComparison:
    """`paired_comparisons` for one metric."""
    return paired_comparisons(np.asarray(a)[:, None], np.asarray(b)[:, None], seed)[0]


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values (S. Holm, "A simple sequentially rejective multiple test
    procedure", Scand. J. Statist. 6:65-70, 1979): the i-th smallest of m p-values is multiplied
    by m - i + 1, made non-decreasing in that order, and capped at 1. Rejecting where the
    adjusted p < alpha controls the family-wise error rate at alpha. scipy has no Holm
    (`false_discovery_control` is Benjamini-Hochberg / -Yekutieli) and statsmodels is not a
    dependency, hence these lines."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return p.copy()
    if np.any((p < 0) | (p > 1) | np.isnan(p)):
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    order = np.argsort(p, kind="stable")
    m = p.size
    stepped = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


# --- ranking of several runs ---------------------------------------------------------------


@dataclass(frozen=True)
class PairwiseTest:
    first: str  # the better-ranked of the two
    second: str
    comparison: PairedComparison  # first minus second
    p_holm: float

    def significant(self, alpha: float = ALPHA) -> bool:
        return self.p_holm < alpha


@dataclass(frozen=True)
class Ranking:
    """Runs ordered by their mean (best first) on the instances every run shares, with every
    pair tested and Holm-corrected over the k(k-1)/2 pairs."""

    order: tuple[str, ...]
    means: dict[str, Interval]
    pairs: tuple[PairwiseTest, ...]
    n: int

    def beats(self, label: str, alpha: float = ALPHA) -> list[str]:
        """Runs that `label` is significantly better than (after Holm)."""
        return [p.second for p in self.pairs if p.first == label and p.significant(alpha)]


def rank_runs(
    values: Mapping[str, np.ndarray], lower_is_better: bool = True, seed: int = SEED
) -> Ranking:
    """`values`: label -> per-instance values on the same instances, in the same order."""
    labels = list(values)
    lengths = {len(v) for v in values.values()}
    if len(labels) < 2 or len(lengths) != 1:
        raise ValueError("a ranking needs >= 2 runs with values on the same instances")
    means = {label: mean_interval(values[label], seed) for label in labels}
    sign = 1.0 if lower_is_better else -1.0
    order = tuple(sorted(labels, key=lambda lb: (sign * means[lb].estimate, labels.index(lb))))
    pairs = list(itertools.combinations(order, 2))
    comparisons = [paired_comparison(values[x], values[y], seed) for x, y in pairs]
    adjusted = holm([c.p_value for c in comparisons])
    tests = tuple(
        PairwiseTest(x, y, c, float(p)) for (x, y), c, p in zip(pairs, comparisons, adjusted)
    )
    return Ranking(order, means, tests, n=next(iter(lengths)))


def format_p(p: float) -> str:
    """p-values as people read them: 3 significant digits, `< 1e-4` below that."""
    if math.isnan(p):
        return "–"
    return "< 1e-4" if p < 1e-4 else f"{p:.3g}"
