"""The `biou` column of `bench run` against RClicks' own loop (golden/metrics/rclicks_clicker.json,
baseline run: the official clicker and the protocol fake predictor, `get_boundary_iou` after
every click), mBIoU@k, an old run without `biou`, and `bench rescore`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.store import read_trajectories

PLUGIN = Path(__file__).parent / "plugins" / "shifted_reveal.py"


@pytest.fixture(scope="module")
def grabcut10(golden, data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("biou") / "run"
    args = ["run", "--model", f"{PLUGIN}:make_predictor", "--datasets", "grabcut"]
    args += ["--data-root", str(data_root), "--limit", "10", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--no-progress", "--save-masks"])
    assert result.exit_code == 0, result.output
    reference = json.loads((golden / "metrics" / "rclicks_clicker.json").read_text())
    baseline = next(r for r in reference["runs"] if r["prior"] == "baseline_no_click_model")
    return out, baseline


@pytest.mark.slow
def test_biou_column_equals_rclicks_get_boundary_iou_after_every_click(grabcut10):
    out, baseline = grabcut10
    frame = read_trajectories(out)
    assert frame["biou"].dtype == np.float32
    groups = list(frame.groupby("sample_id", sort=False))
    assert len(groups) == len(baseline["instances"]) == 10
    for (_, group), inst in zip(groups, baseline["instances"]):
        clicks = [[int(r.y), int(r.x), bool(r.positive)] for r in group.itertuples()]
        assert clicks == [[c["y"], c["x"], c["positive"]] for c in inst["per_click"]]
        expected = np.float32([c["biou"] for c in inst["per_click"]])
        np.testing.assert_array_equal(group["biou"].to_numpy(), expected)
    result = CliRunner().invoke(main, ["summary", str(out)])
    assert result.exit_code == 0, result.output
    row = pd.read_csv(out / "summary.csv", index_col="dataset").loc["grabcut"]
    for k in (1, 5, 20):
        column = np.float32([inst["per_click"][k - 1]["biou"] for inst in baseline["instances"]])
        assert row[f"mBIoU@{k}"] == pytest.approx(float(column.mean()), abs=1e-6)
    assert row["mBIoU@5_lo"] < row["mBIoU@5"] < row["mBIoU@5_hi"]


def make_old(out: Path, old: Path) -> pd.DataFrame:
    """A copy of run `out` as a run made before the biou / gt_area columns existed."""
    import shutil

    shutil.copytree(out, old)
    original = read_trajectories(old)
    journal = old / "journal.jsonl"
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    for entry in entries:
        for inst in entry["instances"]:
            del inst["bious"], inst["gt_area"]
    journal.write_text("".join(json.dumps(e) + "\n" for e in entries))
    original.drop(columns=["biou", "gt_area"]).to_parquet(old / "trajectories.parquet")
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["model"]["name"] = "old-golden"
    (old / "manifest.json").write_text(json.dumps(manifest))
    return original


@pytest.mark.slow
def test_old_run_says_unavailable_and_rescore_fills_biou_in(grabcut10, tmp_path):
    out, _ = grabcut10
    old = tmp_path / "old"
    original = make_old(out, old)

    result = CliRunner().invoke(main, ["summary", str(old)])
    assert result.exit_code == 0, result.output
    assert "mBIoU@5: unavailable, this run has no boundary IoU" in result.output
    assert np.isnan(pd.read_csv(old / "summary.csv", index_col="dataset").loc["grabcut", "mBIoU@5"])

    (old / "masks" / "grabcut" / "106024.npz").unlink()  # one instance without masks
    result = CliRunner().invoke(main, ["rescore", str(old)])
    assert result.exit_code == 0, result.output
    assert "filled in for 9 instance(s)" in result.output and "grabcut/106024" in result.output
    rescored = read_trajectories(old)
    kept = rescored["sample_id"] != "106024"
    np.testing.assert_array_equal(rescored["biou"][kept], original["biou"][kept])
    assert rescored["biou"][~kept].isna().all()
    np.testing.assert_array_equal(rescored["gt_area"], original["gt_area"])


@pytest.mark.slow
def test_gt_area_and_summary_by_size(grabcut10, golden):
    """gt_area is the official loader's object pixel count (n_object of boundary_iou.json, the
    same first 10 GrabCut instances); `--by size` rows hold each bucket's instances only."""
    out, _ = grabcut10
    cases = json.loads((golden / "metrics" / "boundary_iou.json").read_text())["cases"]
    n_object = [int(c["n_object"]) for c in cases if c["dataset"] == "GrabCut"]
    frame = read_trajectories(out)
    areas = frame.drop_duplicates("sample_id")["gt_area"].tolist()
    assert areas == n_object
    result = CliRunner().invoke(main, ["summary", str(out), "--by", "size", "--metrics", "NoC@90"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "summary-by-size.csv", index_col=["dataset", "size"])
    protocol = json.loads((golden / "protocol" / "GrabCut.json").read_text())["instances"][:10]
    nocs = np.array([inst["noc"]["0.90"] for inst in protocol], float)
    buckets = np.array(
        ["small" if a < 32**2 else "medium" if a < 96**2 else "large" for a in n_object]
    )
    for bucket in dict.fromkeys(buckets):
        row = table.loc[("grabcut", bucket)]
        assert row["instances"] == (buckets == bucket).sum()
        assert row["NoC@90"] == pytest.approx(nocs[buckets == bucket].mean(), abs=1e-12)


def test_size_buckets_are_cocos_area_ranges():
    from bench import metrics

    rows = []
    for i, area in enumerate([10, 1023, 1024, 9215, 9216, 50_000]):
        for k, iou in enumerate([0.5, 0.95]):
            rows.append(("d", f"s{i}", k + 1, iou, float(area)))
    frame = pd.DataFrame(rows, columns=["dataset", "sample_id", "click", "iou", "gt_area"])
    frame["iou"] = frame["iou"].astype(np.float32)
    split = metrics.split_by_size(frame)
    table = metrics.summarize(split, max_clicks=2, names="NoC@90")
    table.index = metrics.size_index(table.index)
    assert list(table.index) == [("d", "small"), ("d", "medium"), ("d", "large")]
    assert table["instances"].tolist() == [2, 2, 2]
    with pytest.raises(metrics.MetricError, match="rescore"):
        metrics.split_by_size(frame.drop(columns="gt_area"))


@pytest.mark.slow
def test_report_tables_follow_metrics_and_mbiou_curve(grabcut10, tmp_path):
    from bench.reports.build import build_report

    out, baseline = grabcut10
    make_old(out, tmp_path / "old")
    names = ["NoC@90", "NoF@95", "mBIoU@5", "IoU-AUC"]
    report = build_report([out, tmp_path / "old"], tmp_path / "r.html", (1,), metric_names=names)
    table = report.tables["noc"]
    assert [m for _, m in table.display.columns] == names
    new_row = table.display.iloc[0]
    mbiou5 = np.float32([inst["per_click"][4]["biou"] for inst in baseline["instances"]]).mean()
    assert new_row[("GrabCut", "mBIoU@5")] == f"{100 * mbiou5:.2f}"  # percent, as papers print
    old_row = table.display.iloc[1]
    assert old_row[("GrabCut", "mBIoU@5")] == "–" and old_row[("GrabCut", "NoC@90")] != "–"
    figures = {f.key: f for f in report.figures}
    assert "figure-mbiou" in figures and "old-golden" in figures["figure-mbiou"].caption
    html = (tmp_path / "r.html").read_text()
    assert re.search(r"old-golden[^<]*: no boundary IoU stored[^<]*mBIoU unavailable", html)
