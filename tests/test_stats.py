"""`bench.stats`: bootstrap intervals against theory and scipy, per-instance metrics against the
official aggregates, paired tests on known shifts and on identical runs, Holm's procedure."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from click.testing import CliRunner
from run_folders import delayed, golden_instances, write_run

from bench import metrics, stats
from bench.cli import main as bench_main
from bench.store import read_trajectories


def test_bootstrap_ci_of_a_mean_matches_the_normal_ci_at_n_2000():
    sample = np.random.default_rng(12345).normal(3.0, 2.0, 2000)
    interval = stats.mean_interval(sample)
    half = scipy.stats.norm.ppf(0.975) * sample.std(ddof=1) / np.sqrt(sample.size)
    assert interval.estimate == pytest.approx(sample.mean())
    # Monte Carlo error of the 2.5 / 97.5 percentiles over 10,000 resamples is ~1-2 % of the
    # half-width; 5 % leaves room without hiding a wrong method (e.g. a 90 % or SD-based CI).
    assert interval.low == pytest.approx(sample.mean() - half, abs=0.05 * half)
    assert interval.high == pytest.approx(sample.mean() + half, abs=0.05 * half)


def test_intervals_are_reproducible_and_vectorised_like_single_calls():
    values = np.random.default_rng(7).integers(1, 21, size=(345, 4)).astype(float)
    low, high = stats.bootstrap_means(values)
    again = stats.bootstrap_means(values)
    np.testing.assert_array_equal(low, again[0])
    for j in range(values.shape[1]):  # one call for all metrics = one call per metric
        ci = scipy.stats.bootstrap(
            (values[:, j],),
            np.mean,
            n_resamples=stats.N_RESAMPLES,
            method="percentile",
            rng=np.random.default_rng(stats.SEED),
        ).confidence_interval
        assert (low[j], high[j]) == pytest.approx((ci.low, ci.high))


def test_single_instance_has_no_interval_and_constant_values_a_point():
    one = stats.mean_interval([4.0])
    assert one.estimate == 4.0 and np.isnan(one.low) and np.isnan(one.high)
    constant = stats.mean_interval([20.0] * 30)
    assert (constant.low, constant.high) == (20.0, 20.0)


@pytest.fixture(scope="module")
def golden_davis_run(tmp_path_factory, golden):
    folder = tmp_path_factory.mktemp("davis")
    return write_run(folder / "run", "DAVIS", golden_instances(golden, "DAVIS"))


def test_per_instance_metrics_average_to_the_official_aggregates(golden_davis_run, golden):
    reference = json.loads((golden / "protocol" / "DAVIS.json").read_text())
    agg = reference["aggregates"]
    per = stats.per_instance_metrics(read_trajectories(golden_davis_run))
    assert len(per) == reference["num_instances"] == 345
    for key in ("80", "85", "90"):
        assert per[f"NoC@{key}"].mean() == pytest.approx(agg["NoC"][f"0.{key}"], abs=1e-12)
    for key in ("85", "90"):
        assert per[f"NoF@{key}"].sum() == agg["NoF"][f"0.{key}"]
    means = [per[f"IoU@{k}"].mean() for k in range(1, 21)]
    np.testing.assert_allclose(means, agg["mIoU_at_k"], atol=1e-6)
    per_noc = [inst["noc"]["0.90"] for inst in reference["instances"]]
    np.testing.assert_array_equal(per["NoC@90"].to_numpy(), per_noc)


def test_summary_cli_writes_ci_columns(golden_davis_run, golden):
    result = CliRunner().invoke(bench_main, ["summary", str(golden_davis_run)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(golden_davis_run / "summary.csv", index_col="dataset")
    row = table.loc["davis"]
    reference = json.loads((golden / "protocol" / "DAVIS.json").read_text())
    per_noc = np.array([inst["noc"]["0.90"] for inst in reference["instances"]], float)
    ci = scipy.stats.bootstrap(
        (per_noc,), np.mean, n_resamples=10_000, method="percentile", rng=np.random.default_rng(0)
    ).confidence_interval
    assert (row["NoC@90_lo"], row["NoC@90_hi"]) == pytest.approx((ci.low, ci.high))
    assert row["NoC@90_lo"] < row["NoC@90"] < row["NoC@90_hi"]
    # NoF bounds are counts of failed instances, around the official count.
    failed = np.array([inst["nof"]["0.90"] for inst in reference["instances"]], float)
    nof = scipy.stats.bootstrap(
        (failed,), np.mean, n_resamples=10_000, method="percentile", rng=np.random.default_rng(0)
    ).confidence_interval
    assert row["NoF@90_lo"] == round(nof.low * 345) and row["NoF@90_hi"] == round(nof.high * 345)
    assert row["NoF@90_lo"] <= row["NoF@90"] <= row["NoF@90_hi"]
    assert row["mIoU@5_lo"] < row["mIoU@5"] < row["mIoU@5_hi"]
    assert f"{row['NoC@90']:.2f} [{row['NoC@90_lo']:.2f}, {row['NoC@90_hi']:.2f}]" in result.output
    assert "percentile bootstrap" in result.output


def test_paired_test_detects_a_known_shift(golden):
    instances = golden_instances(golden, "GrabCut")
    a = np.array([stats_noc(ious) for _, ious in instances], float)
    b = np.array([stats_noc(delayed(ious, 1)) for _, ious in instances], float)
    shift = b - a
    assert set(shift) == {0.0, 1.0}  # one click later, except where the cap of 20 hides it
    result = stats.paired_comparison(a, b)
    assert result.difference == pytest.approx(-shift.mean())
    assert result.high < 0 and result.low <= -shift.mean() <= result.high
    assert result.p_value < 0.01
    assert result.nonzero == int(shift.sum())


def stats_noc(ious) -> int:
    return int(metrics.noc(np.asarray(ious, np.float32), metrics.official_threshold(0.90)))


def test_identical_runs_give_p_1_without_warnings():
    values = np.random.default_rng(3).integers(1, 21, 50).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = stats.paired_comparison(values, values.copy())
    assert result.identical and result.p_value == 1.0
    assert (result.difference, result.low, result.high) == (0.0, 0.0, 0.0)
    assert not result.significant()


def test_holm_adjustment():
    # Holm (1979): sorted p (0.005, 0.01, 0.03, 0.04) times (4, 3, 2, 1) = (0.02, 0.03, 0.06,
    # 0.04), made monotone: (0.02, 0.03, 0.06, 0.06), back in input order.
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    p = np.random.default_rng(0).uniform(0, 0.2, 12)
    adjusted = stats.holm(p)
    assert np.all(adjusted >= p) and np.all(adjusted <= np.minimum(p * p.size, 1))
    order = np.argsort(p)
    assert np.all(np.diff(adjusted[order]) >= 0)
    assert stats.holm([0.9, 0.8]).tolist() == [1.0, 1.0]  # 0.8 * 2 capped at 1, carried up
    with pytest.raises(ValueError):
        stats.holm([0.1, 1.5])


def test_ranking_orders_runs_and_holm_corrects_every_pair(golden):
    instances = golden_instances(golden, "GrabCut")
    values = {
        name: np.array([stats_noc(delayed(ious, shift)) for _, ious in instances], float)
        for name, shift in (("two later", 2), ("official", 0), ("one later", 1))
    }
    ranking = stats.rank_runs(values)
    assert ranking.order == ("official", "one later", "two later")
    assert len(ranking.pairs) == 3 and ranking.n == 50
    raw = [t.comparison.p_value for t in ranking.pairs]
    np.testing.assert_allclose([t.p_holm for t in ranking.pairs], stats.holm(raw))
    assert ranking.beats("official") == ["one later", "two later"]
    assert ranking.beats("two later") == []
