"""`bench compare RUN_A RUN_B [RUN_C ...]`: is one method really better than another?

Two runs: per dataset, on the instances both evaluated, the paired difference A - B of each
metric of `--metrics` (default NoC@85 and NoC@90, any `bench.metrics` name) with its paired
bootstrap CI and the Wilcoxon signed-rank p-value (`bench.stats`).
Three or more: per dataset, a ranking on the instances every run evaluated, every pair tested
and the p-values Holm-corrected over the pairs. Runs made under different protocols (click
limit, threshold, click model, ...) are refused: their NoC do not measure the same thing; so
is an oracle run (its predictor received the ground truth) beside a method's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

DEFAULT_METRICS = ("NoC@85", "NoC@90")


@dataclass(frozen=True)
class DatasetPairing:
    """The instances of one dataset that every compared run evaluated, in the first run's
    order, and what each run had."""

    dataset: str  # CLI name (the trajectories' `dataset` column)
    label: str  # table name (official folder)
    shared: list[str]
    counts: dict[str, int]  # run label -> instances it evaluated in this dataset


def _protocol_problems(runs: list[Any]) -> list[str]:
    from bench.reports.compare import comparable_protocol, protocol_differences

    first = comparable_protocol(runs[0].protocol)
    problems = []
    for run in runs[1:]:
        diffs = protocol_differences(comparable_protocol(run.protocol), first)
        if run.oracle != runs[0].oracle:  # an oracle saw the ground truth: not ranked with methods
            oracle = run.label if run.oracle else runs[0].label
            diffs.append(f"{oracle} is an oracle (its predictor received the ground truth)")
        if diffs:
            problems.append(f"{run.label} vs {runs[0].label}: " + "; ".join(diffs))
    return problems


def _fingerprint_problems(runs: list[Any], dataset: str) -> list[str]:
    prints = {r.label: (r.dataset_info(dataset).get("fingerprint") or "") for r in runs}
    if len(set(prints.values())) <= 1:
        return []
    detail = ", ".join(f"{label}: {fp[:12] or 'unknown'}" for label, fp in prints.items())
    return [
        f"{dataset}: the runs listed different dataset contents (fingerprints {detail}); "
        "a sample id may not name the same image in each"
    ]


def pair_instances(runs: list[Any], per_instance: dict[str, Any]) -> list[DatasetPairing]:
    """Datasets every run evaluated, with the instances they all share (maybe none)."""
    datasets = [d for d in runs[0].datasets() if all(d in r.datasets() for r in runs[1:])]
    pairings = []
    for dataset in datasets:
        ids = {r.label: list(per_instance[r.label].loc[dataset].index) for r in runs}
        common = set.intersection(*(set(v) for v in ids.values()))
        shared = [s for s in ids[runs[0].label] if s in common]
        counts = {label: len(v) for label, v in ids.items()}
        pairings.append(DatasetPairing(dataset, runs[0].dataset_label(dataset), shared, counts))
    return pairings


def _overlap_warnings(runs: list[Any], pairings: list[DatasetPairing]) -> list[str]:
    out = []
    compared = {p.dataset for p in pairings}
    for run in runs:
        for dataset in run.datasets():
            if dataset not in compared:
                out.append(f"{dataset}: only in some runs ({run.label} has it); not compared")
    for p in pairings:
        if p.shared and any(n != len(p.shared) for n in p.counts.values()):
            have = ", ".join(f"{label} {n}" for label, n in p.counts.items())
            out.append(
                f"{p.label}: partial overlap, {len(p.shared)} instances shared by all runs "
                f"({have}); only the shared ones are compared"
            )
        elif not p.shared:
            out.append(f"{p.label}: no instance shared by all runs; not compared")
    return list(dict.fromkeys(out))


def _comparison_row(
    dataset: str, metric: str, run_a: str, run_b: str, c: Any, p_holm: float
) -> dict[str, Any]:
    """One row of the comparison CSV (two runs, or one pair of a ranking)."""
    return {
        "dataset": dataset,
        "metric": metric,
        "run_a": run_a,
        "run_b": run_b,
        "instances": c.n,
        "differing": c.nonzero,
        "mean_a": c.mean_a,
        "mean_b": c.mean_b,
        "difference": c.difference,
        "ci_low": c.low,
        "ci_high": c.high,
        "p_value": c.p_value,
        "p_holm": p_holm,
    }


def _available(per_instance, runs, dataset: str, shared: list[str], metric: Any) -> bool:
    """Whether every run has a value for every shared instance (an early-stopped run has no
    NoC above its stop, an old run no boundary IoU)."""
    return all(
        not per_instance[r.label].loc[dataset].loc[shared, metric.instance_column].isna().any()
        for r in runs
    )


def _pair_rows(runs, per_instance, pairings, metric_list) -> list[dict[str, Any]]:
    from bench import stats

    a, b = runs
    rows = []
    for p in pairings:
        if not p.shared:
            continue
        usable = [m for m in metric_list if _available(per_instance, runs, p.dataset, p.shared, m)]
        for m in metric_list:
            if m not in usable:
                click.echo(f"warning: {p.label}: {m.name} unavailable in some run", err=True)
        if not usable:
            continue
        columns = [m.instance_column for m in usable]
        va = per_instance[a.label].loc[p.dataset].loc[p.shared, columns]
        vb = per_instance[b.label].loc[p.dataset].loc[p.shared, columns]
        for m, c in zip(usable, stats.paired_comparisons(va, vb)):
            row = _comparison_row(p.label, m.name, a.label, b.label, c, float("nan"))
            row["lower_is_better"] = m.lower_is_better
            rows.append(row)
    return rows


def short_names(runs: list[Any]) -> dict[str, str]:
    """A, B, C, ... for the tables; the legend printed above them names each run."""
    letters = [chr(ord("A") + i) for i in range(26)]
    return {r.label: letters[i] if i < 26 else f"R{i + 1}" for i, r in enumerate(runs)}


def _verdict(
    difference: float,
    p: float,
    a: str,
    b: str,
    identical: bool = False,
    lower_is_better: bool = True,
) -> str:
    from bench.stats import ALPHA

    if identical:
        return "identical on every shared instance"
    if p >= ALPHA:
        return "no significant difference"
    a_better = difference < 0 if lower_is_better else difference > 0
    return f"{a if a_better else b} better"


def _digits(row: dict[str, Any]) -> int:
    """Two decimals for clicks and counts, three for IoU-like fractions."""
    return 2 if row.get("lower_is_better", True) else 3


def _difference_text(row: dict[str, Any]) -> str:
    """`+0.12 [-0.30, +0.50]`; without an interval (a single shared instance, or no spread)
    the bare difference and why, never `[+nan, +nan]`."""
    d = _digits(row)
    text = f"{row['difference']:+.{d}f}"
    low, high = row["ci_low"], row["ci_high"]
    if low != low or high != high:  # NaN: the bootstrap has nothing to resample
        n = row.get("instances")
        return text + (" [no CI: 1 instance]" if n == 1 else " [no CI]")
    return text + f" [{low:+.{d}f}, {high:+.{d}f}]"


def _print_pairs(rows: list[dict[str, Any]]) -> None:
    import pandas as pd

    from bench.stats import format_p

    table = pd.DataFrame(
        {
            "dataset": [r["dataset"] for r in rows],
            "metric": [r["metric"] for r in rows],
            "n": [r["instances"] for r in rows],
            "A": [f"{r['mean_a']:.{_digits(r)}f}" for r in rows],
            "B": [f"{r['mean_b']:.{_digits(r)}f}" for r in rows],
            "A - B [95% CI]": [_difference_text(r) for r in rows],
            "Wilcoxon p": [format_p(r["p_value"]) for r in rows],
            "": [
                _verdict(
                    r["difference"],
                    r["p_value"],
                    "A",
                    "B",
                    r["differing"] == 0,
                    r.get("lower_is_better", True),
                )
                for r in rows
            ],
        }
    )
    click.echo(table.to_string(index=False))


def _ranking_rows(runs, per_instance, pairings, metric_list) -> list[dict[str, Any]]:
    import pandas as pd

    from bench import stats

    short = short_names(runs)
    rows = []
    for p in pairings:
        if not p.shared:
            continue
        for m in metric_list:
            metric = m.name
            if not _available(per_instance, runs, p.dataset, p.shared, m):
                click.echo(f"warning: {p.label}: {metric} unavailable in some run", err=True)
                continue
            values = {
                r.label: per_instance[r.label]
                .loc[p.dataset]
                .loc[p.shared, m.instance_column]
                .to_numpy()
                for r in runs
            }
            ranking = stats.rank_runs(values, lower_is_better=m.lower_is_better)
            click.echo(
                f"\n{p.label}, {metric}: {ranking.n} instances shared by all {len(runs)} runs; "
                f"Holm-corrected over {len(ranking.pairs)} pairs"
            )
            table = pd.DataFrame(
                {
                    "rank": range(1, len(ranking.order) + 1),
                    "run": [short[lb] for lb in ranking.order],
                    f"{metric} [95% CI]": [str(ranking.means[lb]) for lb in ranking.order],
                    "significantly better than (Holm p < 0.05)": [
                        ", ".join(short[x] for x in ranking.beats(lb)) or "–"
                        for lb in ranking.order
                    ],
                }
            )
            click.echo(table.to_string(index=False))
            pairs = pd.DataFrame(
                {
                    "pair": [f"{short[t.first]} - {short[t.second]}" for t in ranking.pairs],
                    "difference [95% CI]": [
                        f"{t.comparison.difference:+.2f} "
                        f"[{t.comparison.low:+.2f}, {t.comparison.high:+.2f}]"
                        for t in ranking.pairs
                    ],
                    "Wilcoxon p": [stats.format_p(t.comparison.p_value) for t in ranking.pairs],
                    "Holm p": [stats.format_p(t.p_holm) for t in ranking.pairs],
                }
            )
            click.echo(pairs.to_string(index=False))
            for t in ranking.pairs:
                rows.append(
                    _comparison_row(p.label, metric, t.first, t.second, t.comparison, t.p_holm)
                )
    return rows


def _parse_metrics(text: str) -> list[Any]:
    from bench.metrics import MetricError, parse_metrics

    try:
        return parse_metrics(text)
    except MetricError as exc:
        raise click.BadParameter(str(exc), param_hint="--metrics") from None


@click.command("compare")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--metrics",
    "metric_text",
    default=",".join(DEFAULT_METRICS),
    show_default=True,
    help="Metrics to compare (comma-separated registry names: NoC@<percent>, NoF@<percent>, "
    "mIoU@<k>, mBIoU@<k>, IoU-AUC, ...).",
)
@click.option(
    "--allow-protocol-difference",
    is_flag=True,
    help="Compare runs whose protocols differ (e.g. one method under two click models); "
    "the differences are printed as warnings.",
)
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write every comparison (one row per dataset, metric and pair) as CSV.",
)
def compare_command(
    run_dirs: tuple[Path, ...], metric_text: str, allow_protocol_difference: bool, csv_path
) -> None:
    """Paired NoC differences between runs on the instances they share, with 95% bootstrap
    CIs and Wilcoxon p-values; with three or more runs, a Holm-corrected ranking."""
    import pandas as pd

    from bench import stats
    from bench.reports.compare import status_problem
    from bench.reports.runs import RunFolderError, load_runs

    metric_list = _parse_metrics(metric_text)
    if len(run_dirs) < 2:
        raise click.UsageError("give at least two run directories")
    try:
        runs = load_runs(list(run_dirs))
    except RunFolderError as exc:
        raise click.UsageError(str(exc)) from None

    problems = _protocol_problems(runs)
    if problems and not allow_protocol_difference:
        raise click.ClickException(
            "the runs were made under different protocols, so their NoC do not measure the "
            "same thing:\n  "
            + "\n  ".join(problems)
            + "\n(--allow-protocol-difference compares them anyway, e.g. one method under two "
            "click models)"
        )
    names = [m.name for m in metric_list]
    per_instance = {
        r.label: stats.per_instance_metrics(
            r.trajectories, r.max_clicks, names=names, stop_at_iou=r.protocol.get("stop_at_iou")
        )
        for r in runs
    }
    pairings = pair_instances(runs, per_instance)
    if not any(p.shared for p in pairings):
        names = " and ".join(str(d) for d in run_dirs)
        raise click.ClickException(
            f"no instance is shared by {names}: nothing to compare "
            "(different datasets, or disjoint --limit / shards)"
        )
    warnings = [f"PROTOCOL DIFFERS: {p}" for p in problems]
    for run in runs:
        status = status_problem(run.manifest.get("status"))
        if status:
            warnings.append(f"{run.label}: {status}; its instances so far are compared")
    for p in pairings:
        if p.shared:
            warnings += _fingerprint_problems(runs, p.dataset)
    warnings += _overlap_warnings(runs, pairings)
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    for run in runs:
        click.echo(f"{short_names(runs)[run.label]} = {run.label}: {run.path}")

    if len(runs) == 2:
        rows = _pair_rows(runs, per_instance, pairings, metric_list)
        _print_pairs(rows)
    else:
        rows = _ranking_rows(runs, per_instance, pairings, metric_list)
    click.echo(
        f"\nCI: {stats.CI_METHOD}, of the mean paired difference (instances resampled with "
        f"their pair).\np: two-sided {stats.PAIRED_TEST}"
        + ("; Holm-corrected over the pairs of each dataset and metric." if len(runs) > 2 else ".")
        + "\nLower NoC / NoF is better, higher IoU is better: the verdict column says which run "
        "the difference favours."
    )
    if problems:
        click.echo("WARNING: these runs differ in protocol (see above).", err=True)
    if csv_path is not None:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame.from_records(rows).to_csv(csv_path, index=False)
        click.echo(f"wrote {csv_path}")
