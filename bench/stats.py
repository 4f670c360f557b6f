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
    names: str | Sequence[str] | None = None,
    stop_at_iou: float | None = None,
) -> pd.DataFrame:
    """One row per (dataset, sample_id), in stored order, one column per metric (default set
    of `bench.metrics`): NoC@t, failure indicators NoF@t (0/1, by `nof_rule`), IoU@k, BIoU@k,
    IoU-AUC. Their dataset aggregates are `bench.metrics.summarize`'s figures."""
    return metrics.per_instance(trajectories, names, max_clicks, nof_rule, stop_at_iou)


def evaluation_intervals(ev: metrics.DatasetEvaluation, seed: int = SEED) -> dict[str, float]:
    """`<metric>_lo` / `<metric>_hi` of one dataset's metrics, all from one bootstrap call on
    the per-instance values the figures were aggregated from: NoC as clicks, NoF as a count of
    failed instances (n times the failure-rate interval), mIoU@k as a fraction. A metric with
    an unavailable value (NaN) has no interval."""
    usable = [m for m in ev.metrics if not np.isnan(ev.values[m.instance_column].to_numpy()).any()]
    columns = list(dict.fromkeys(m.instance_column for m in usable))
    if not columns:
        return {}
    low, high = bootstrap_means(ev.values[columns].to_numpy(np.float64), seed)
    bounds = dict(zip(columns, zip(low, high)))
    n = len(ev.values)
    row: dict[str, float] = {}
    for m in usable:
        lo, hi = bounds[m.instance_column]
        if m.is_count:  # resampled means are k / n: counts, up to rounding
            lo, hi = float(np.rint(lo * n)), float(np.rint(hi * n))
        row[f"{m.name}_lo"], row[f"{m.name}_hi"] = float(lo), float(hi)
    return row


def summarize_with_intervals(
    trajectories: pd.DataFrame,
    max_clicks: int = metrics.MAX_CLICKS,
    nof_rule: str = "official",
    seed: int = SEED,
    names: str | Sequence[str] | None = None,
    stop_at_iou: float | None = None,
    extra: Sequence[str] = (),
) -> pd.DataFrame:
    """`bench.metrics.summarize` with each metric followed by its `_lo` / `_hi` CI bounds;
    figures and intervals come from one evaluation of the trajectories."""
    evaluations = metrics.evaluate(trajectories, names, max_clicks, nof_rule, stop_at_iou, extra)
    table = metrics.summary_frame(evaluations, trajectories)
    if table.empty:
        return table
    bounds = pd.DataFrame.from_dict(
        {ev.data.dataset: evaluation_intervals(ev, seed) for ev in evaluations}, orient="index"
    )
    ordered = []
    for column in table.columns:
        ordered.append(column)
        ordered += [c for c in (f"{column}_lo", f"{column}_hi") if c in bounds.columns]
    return table.join(bounds)[ordered]


def summarize_run(
    trajectories: pd.DataFrame,
    manifest: Mapping[str, object],
    nof_rule: str = "official",
    names: str | Sequence[str] | None = None,
    seed: int = SEED,
    extra: Sequence[str] = (),
    by_size: bool = False,
) -> pd.DataFrame:
    """`summarize_with_intervals` under the protocol the run's manifest records (click limit,
    early stop); `by_size`: one row per dataset and COCO size bucket (index (dataset, size))."""
    protocol = manifest.get("protocol") or {}
    assert isinstance(protocol, Mapping)
    if by_size:
        trajectories = metrics.split_by_size(trajectories)
    table = summarize_with_intervals(
        trajectories,
        int(protocol.get("max_clicks") or metrics.MAX_CLICKS),
        nof_rule=nof_rule,
        seed=seed,
        names=names,
        stop_at_iou=protocol.get("stop_at_iou"),
        extra=extra,
    )
    if by_size and not table.empty:
        table.index = metrics.size_index(table.index)
    return table


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
