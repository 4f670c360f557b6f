"""`bench robustness` end to end: eleven run folders through `bench run`'s engine with the golden
fake predictor on the first GrabCut images; the clicks of G1, G5, G10 and the base equal
RClicks' recorded DT clicker (`golden/metrics/rclicks_clicker.json`), and batched, sharded and
resumed robustness runs give the same clicks and the same robustness.csv."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.robustness import GROUPS, read_runs
from bench.store import PROTOCOL_COLUMNS, read_trajectories

PLUGIN = Path(__file__).parent / "plugins" / "shifted_reveal.py"
LIMIT, CLICKS = 2, 6
LABELS = ("base", *GROUPS)


def robustness(data_root: Path, out: Path, *extra: str) -> None:
    args = [
        "robustness",
        "--model",
        f"{PLUGIN}:make_predictor",
        "--datasets",
        "grabcut",
        "--data-root",
        str(data_root),
        "--limit",
        str(LIMIT),
        "--max-clicks",
        str(CLICKS),
        "--no-progress",
        "--out",
        str(out),
        *extra,
    ]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output


def clicks_of(out: Path) -> dict[str, pd.DataFrame]:
    """Each run's protocol columns, the runs found through the folder's robustness.json."""
    runs = read_runs(out).trajectories
    return {label: runs[label][PROTOCOL_COLUMNS].reset_index(drop=True) for label in LABELS}


@pytest.fixture(scope="module")
def plain(tmp_path_factory, data_root) -> Path:
    out = tmp_path_factory.mktemp("robustness") / "plain"
    robustness(data_root, out)
    return out


@pytest.mark.slow
def test_groups_reproduce_rclicks_recorded_clicks(plain, golden):
    recorded = json.loads((golden / "metrics" / "rclicks_clicker.json").read_text())
    runs = {(r["prior"], r["quantile_low"]): r["instances"] for r in recorded["runs"]}
    expected = {
        "base": runs[("baseline_no_click_model", 0.0)],
        "G1": runs[("DT", 0.0)],
        "G5": runs[("DT", 0.4)],
        "G10": runs[("DT", 0.9)],
    }
    plan = json.loads((plain / "robustness.json").read_text())
    assert plan["runs"]["G5"]["click_model"] == "rclicks:prior=dt,group=5"
    for label, instances in expected.items():
        frame = read_trajectories(plain / label)
        for sid, inst in zip(dict.fromkeys(frame["sample_id"]), instances[:LIMIT], strict=True):
            part = frame[frame["sample_id"] == sid].sort_values("click")
            got = [[int(y), int(x), bool(p)] for y, x, p in part[["y", "x", "positive"]].values]
            assert got == inst["clicks"][:CLICKS], (label, sid)
    table = pd.read_csv(plain / "robustness.csv", index_col="dataset")
    assert list(table.index) == ["grabcut"] and table.loc["grabcut", "instances"] == LIMIT
    assert table.loc["grabcut", "prior"] == "dt"
    runs_read = read_runs(plain)
    assert set(runs_read.trajectories) == set(LABELS) and runs_read.max_clicks == CLICKS


@pytest.mark.slow
def test_batched_sharded_and_resumed_runs_give_the_same_clicks(plain, data_root, tmp_path):
    reference = clicks_of(plain)
    table = pd.read_csv(plain / "robustness.csv", index_col="dataset")

    batched = tmp_path / "batched"
    robustness(data_root, batched, "--batch-size", "3")

    sharded = tmp_path / "sharded"
    robustness(data_root, sharded, "--shard", "1/2")
    robustness(data_root, sharded, "--shard", "0/2")
    assert not (sharded / "robustness.csv").exists()
    robustness(data_root, sharded)  # merges the shards, evaluates nothing new

    # Resume: G5 lost its last entries and G10 its whole run before the rerun; the base run
    # is an existing folder, reused as it is (nothing new evaluated in it).
    resumed = tmp_path / "resumed"
    base_manifest = json.loads((plain / "base" / "manifest.json").read_text())
    robustness(data_root, resumed, "--base", str(plain / "base"))
    assert not (resumed / "base").exists()
    journal = resumed / "G5" / "journal.jsonl"
    journal.write_text(journal.read_text().splitlines(keepends=True)[0])
    (resumed / "G5" / "trajectories.parquet").unlink()
    for child in (resumed / "G10").iterdir():
        child.unlink()
    robustness(data_root, resumed, "--base", str(plain / "base"))
    plan = json.loads((resumed / "robustness.json").read_text())
    assert Path(resumed, plan["runs"]["base"]["dir"]).resolve() == (plain / "base").resolve()
    reused = json.loads((plain / "base" / "manifest.json").read_text())
    assert reused["instances"] == base_manifest["instances"] == LIMIT
    assert reused["resumed"] == base_manifest.get("resumed", 0) + 2

    for out in (batched, sharded, resumed):
        got = clicks_of(out)
        for label in LABELS:
            pd.testing.assert_frame_equal(got[label], reference[label], obj=f"{out.name}/{label}")
        again = pd.read_csv(out / "robustness.csv", index_col="dataset")
        pd.testing.assert_frame_equal(again, table, obj=out.name)
    merged = json.loads((sharded / "G3" / "manifest.json").read_text())
    assert merged["resumed"] == 1 and merged["shard"] is None  # merged, then found complete
    assert len((sharded / "G3" / "journal.jsonl").read_text().splitlines()) == LIMIT
    assert len(list((sharded / "G3" / "shards").iterdir())) == 2


def test_a_bad_prior_fails_before_any_run(data_root, tmp_path):
    out = tmp_path / "bad"
    args = ["robustness", "--model", f"{PLUGIN}:make_predictor", "--datasets", "grabcut"]
    args += ["--data-root", str(data_root), "--out", str(out), "--prior", "no_such_module:map"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and "cannot import no_such_module" in result.output
    assert not out.exists()
