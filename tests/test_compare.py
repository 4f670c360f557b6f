"""`bench compare` on run folders written from the golden GrabCut trajectories: a known shift is
found, identical runs are told apart from different ones without crashing, runs with no shared
instance or another protocol are refused, partial overlaps are said, and three runs are ranked
with Holm-corrected tests."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from run_folders import OLD_PROTOCOL, delayed, golden_instances, write_run

from bench import metrics, stats
from bench.cli import main as bench_main


def noc_values(instances, thr: float) -> np.ndarray:
    return np.array(
        [
            metrics.noc(np.asarray(ious, np.float32), metrics.official_threshold(thr))
            for _, ious in instances
        ],
        float,
    )


@pytest.fixture(scope="module")
def instances(golden):
    return golden_instances(golden, "GrabCut")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, instances):
    root = tmp_path_factory.mktemp("compare")
    new_official = {**OLD_PROTOCOL, "seed": 0}
    del new_official["click_rule"]
    new_official["click_model"] = {"name": "official", "args": [], "options": {}}
    return {
        "a": write_run(root / "a", "GrabCut", instances, model="method-a"),
        "a_copy": write_run(root / "a_copy", "GrabCut", instances, model="method-a"),
        "later": write_run(
            root / "later", "GrabCut", instances, model="later", transform=lambda s: delayed(s, 1)
        ),
        "later2": write_run(
            root / "later2", "GrabCut", instances, model="later2", transform=lambda s: delayed(s, 2)
        ),
        # Same protocol written the new way (click_model + seed): comparable with the old way.
        "later_new": write_run(
            root / "later_new",
            "GrabCut",
            instances[:30],
            model="later",
            protocol=new_official,
            transform=lambda s: delayed(s, 1),
        ),
        "second_half": write_run(root / "second_half", "GrabCut", instances[25:], model="b"),
        "first_half": write_run(root / "first_half", "GrabCut", instances[:25], model="c"),
        "jitter": write_run(
            root / "jitter",
            "GrabCut",
            instances,
            model="method-a",
            protocol={
                **new_official,
                "click_model": {"name": "jitter", "args": [], "options": {"sigma": 5}},
            },
            transform=lambda s: delayed(s, 1),
        ),
    }


def compare(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(bench_main, ["compare", *args])
    return result.exit_code, result.output


def test_a_known_shift_is_detected(runs, instances, tmp_path):
    csv_path = tmp_path / "pairs.csv"
    code, output = compare(str(runs["a"]), str(runs["later"]), "--csv", str(csv_path))
    assert code == 0, output
    table = pd.read_csv(csv_path).set_index("metric")
    for metric, thr in (("NoC@85", 0.85), ("NoC@90", 0.90)):
        a = noc_values(instances, thr)
        b = noc_values([(s, delayed(i, 1)) for s, i in instances], thr)
        row = table.loc[metric]
        assert row["instances"] == 50 and row["dataset"] == "GrabCut"
        assert row["difference"] == pytest.approx((a - b).mean())
        assert row["difference"] < 0 and row["ci_high"] < 0
        assert row["p_value"] == pytest.approx(stats.paired_comparison(a, b).p_value)
        assert row["p_value"] < 0.01
    assert "A better" in output and "Wilcoxon" in output


def test_identical_runs_give_p_1(runs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code, output = compare(str(runs["a"]), str(runs["a_copy"]))
    assert code == 0, output
    assert output.count("identical on every shared instance") == 2
    assert "+0.00 [+0.00, +0.00]" in output


def test_runs_without_a_shared_instance_are_refused(runs):
    code, output = compare(str(runs["first_half"]), str(runs["second_half"]))
    assert code == 1
    assert "no instance is shared" in output


def test_partial_overlap_is_compared_on_the_shared_instances_and_said(runs, tmp_path):
    csv_path = tmp_path / "pairs.csv"
    code, output = compare(str(runs["a"]), str(runs["later_new"]), "--csv", str(csv_path))
    assert code == 0, output  # old `click_rule` and new `click_model` official: one protocol
    assert "partial overlap, 30 instances shared" in output
    assert (pd.read_csv(csv_path)["instances"] == 30).all()


def test_another_click_model_is_refused_unless_allowed(runs):
    code, output = compare(str(runs["a"]), str(runs["jitter"]))
    assert code == 1
    assert "different protocols" in output and "jitter:sigma=5 (seed 0)" in output
    code, output = compare(str(runs["a"]), str(runs["jitter"]), "--allow-protocol-difference")
    assert code == 0, output
    assert "PROTOCOL DIFFERS" in output and "click_model" in output


def test_three_runs_are_ranked_with_holm_corrected_pairs(runs, tmp_path):
    csv_path = tmp_path / "ranking.csv"
    code, output = compare(
        str(runs["later2"]), str(runs["a"]), str(runs["later"]), "--csv", str(csv_path)
    )
    assert code == 0, output
    table = pd.read_csv(csv_path)
    assert len(table) == 6  # 3 pairs x 2 metrics
    for _, group in table.groupby("metric"):
        np.testing.assert_allclose(group["p_holm"], stats.holm(group["p_value"].to_numpy()))
        assert group.iloc[0]["run_a"] == "method-a"  # best first
    lines = [line.split() for line in output.splitlines()]
    ranked = [line[1] for line in lines if len(line) > 2 and line[0] in ("1", "2", "3")]
    assert ranked[:3] == ["B", "C", "A"]  # A = later2, B = method-a, C = later
    assert "Holm-corrected over 3 pairs" in output
