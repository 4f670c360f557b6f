"""The metric registry (`bench.metrics`) against the official fixtures: SegNext's NoC / NoF at
0.85 / 0.90 / 0.95 and 5-mIoU (`golden/metrics/noc95.json`), RClicks' IoU-AUC ("IoU@20",
`golden/metrics/rclicks_metrics.json`); names, errors and the early stop."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from run_folders import OLD_PROTOCOL, golden_instances, write_run

from bench import metrics
from bench.cli import main as bench_main
from bench.store import read_trajectories


def trajectories_of(dataset: str, sequences: dict[str, list[float]], dtype=np.float32):
    rows = [(dataset, sid, k + 1, v) for sid, seq in sequences.items() for k, v in enumerate(seq)]
    frame = pd.DataFrame(rows, columns=["dataset", "sample_id", "click", "iou"])
    frame["iou"] = frame["iou"].astype(dtype)
    return frame


@pytest.fixture(scope="module")
def grabcut_run(tmp_path_factory, golden):
    folder = tmp_path_factory.mktemp("grabcut") / "run"
    return write_run(folder, "GrabCut", golden_instances(golden, "GrabCut"))


def test_noc_nof_at_85_90_95_and_5_miou_equal_segnext(grabcut_run, golden):
    reference = json.loads((golden / "metrics" / "noc95.json").read_text())
    official = reference["results"]["evaluate_model_py_thresholds"]
    trajectories = read_trajectories(grabcut_run)
    names = ["NoC@85", "NoC@90", "NoC@95", "NoF@85", "NoF@90", "NoF@95", "mIoU@5"]
    per = metrics.per_instance(trajectories, names)
    expected = np.array([inst["noc"] for inst in reference["per_instance_noc_at_0.85_0.90_0.95"]])
    np.testing.assert_array_equal(per[["NoC@85", "NoC@90", "NoC@95"]].to_numpy(), expected)
    table = metrics.summarize(trajectories, names=names)
    assert all(table[f"NoF@{t}"].dtype.kind == "i" for t in (85, 90, 95))
    row = table.loc["grabcut"]
    for t, noc, nof in zip((85, 90, 95), official["NoC"], official["NoF"]):
        assert row[f"NoC@{t}"] == pytest.approx(noc, abs=1e-12)
        assert row[f"NoF@{t}"] == nof
    assert row["mIoU@5"] == pytest.approx(reference["5-mIoU_float32"], abs=1e-6)
    # the official float32 mean, to the last bit, at every click
    full = metrics.summarize(trajectories).loc["grabcut"]
    got = np.array([full[f"mIoU@{k}"] for k in range(1, 21)], np.float32)
    np.testing.assert_array_equal(got, np.float32(reference["mIoU_at_k_float32_mean"]))


def test_summary_cli_default_set_has_noc_and_nof_at_95(grabcut_run, golden):
    result = CliRunner().invoke(bench_main, ["summary", str(grabcut_run)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(grabcut_run / "summary.csv", index_col="dataset")
    reference = json.loads((golden / "metrics" / "noc95.json").read_text())
    official = reference["results"]["evaluate_model_py_thresholds"]
    assert table.loc["grabcut", "NoC@95"] == pytest.approx(official["NoC95"], abs=1e-12)
    assert table.loc["grabcut", "NoF@95"] == official["NoF95"]
    assert table.loc["grabcut", "NoC@95_lo"] < official["NoC95"] < table.loc["grabcut", "NoC@95_hi"]
    assert "NoC@95" in result.output and "16.18 [" in result.output


def test_names_patterns_and_errors():
    assert metrics.get_metric("NoC@95").param == pytest.approx(0.95)
    assert metrics.get_metric("NoF@87.5").param == pytest.approx(0.875)
    assert metrics.get_metric("mIoU@7").instance_column == "IoU@7"
    assert metrics.get_metric("NoC@90").lower_is_better
    assert not metrics.get_metric("mIoU@1").lower_is_better
    with pytest.raises(metrics.MetricError, match=r"unknown metric 'NoQ@90'.*NoC@<percent>"):
        metrics.get_metric("NoQ@90")
    with pytest.raises(metrics.MetricError, match="percentage"):
        metrics.get_metric("NoC@150")
    with pytest.raises(metrics.MetricError, match="click must be 1"):
        metrics.get_metric("mIoU@0")


def test_a_pattern_registered_twice_names_both_sources(monkeypatch):
    from bench.metrics import registry

    monkeypatch.setattr(registry, "REGISTRY", registry._Registry(dict(registry.REGISTRY.specs)))
    spec = metrics.MetricSpec("NoC@<percent>", lambda data, t: np.zeros(len(data)), origin="x.y")
    with pytest.raises(metrics.MetricError, match=r"already registered by bench\.metrics.*x\.y"):
        metrics.register_metric(spec)


def test_entry_point_metric_and_collision(monkeypatch):
    from importlib import metadata

    from bench.metrics import registry

    good = metrics.MetricSpec(
        "Final-IoU", lambda data, _: np.array([float(s[-1]) for s in data.ious]), fmt=".3f"
    )
    clash = metrics.MetricSpec("mIoU@<k>", lambda data, k: np.zeros(len(data)))
    plugins = {"good": [good], "clash": clash}

    class FakeEntryPoint:
        def __init__(self, name):
            self.name, self.value = name, f"plug:{name}"

        def load(self):
            return plugins[self.name]

    shipped = dict(registry.REGISTRY.specs)
    for names, error in ((["good"], None), (["good", "clash"], "mIoU@<k>")):
        monkeypatch.setattr(registry, "REGISTRY", registry._Registry(dict(shipped)))
        monkeypatch.setattr(
            metadata,
            "entry_points",
            lambda group, names=names: (
                [FakeEntryPoint(n) for n in names] if group == metrics.ENTRY_POINT_GROUP else []
            ),
        )
        if error is None:
            frame = trajectories_of("d", {"a": [0.5, 0.75], "b": [0.25, 0.5]})
            row = metrics.summarize(frame, names="Final-IoU,NoC@50").loc["d"]
            assert row["Final-IoU"] == pytest.approx(0.625) and row["NoC@50"] == 1.5
        else:
            with pytest.raises(metrics.MetricError, match=r"already registered.*plug:clash"):
                metrics.get_metric("NoC@90")


def test_noc_above_the_early_stop_is_unavailable(tmp_path, golden):
    """A run stopped at IoU 0.85 cannot say when 0.90 would be reached: NoC@90 / NoF@90 are
    never shown as values (they were 11.50 and 2 on the user's run), NoC@85 still is."""
    instances = golden_instances(golden, "GrabCut")[:6]

    def stopped(ious):
        hits = [i for i, v in enumerate(ious) if v >= 0.85]
        return ious[: hits[0] + 1] if hits else ious

    protocol = {**OLD_PROTOCOL, "stop_at_iou": 0.85, "noc_thresholds": [0.8, 0.85]}
    run = write_run(tmp_path / "run", "GrabCut", instances, protocol=protocol, transform=stopped)
    unstopped = write_run(tmp_path / "full", "GrabCut", instances)
    shown = "NoC@85,NoC@90,NoC@95,NoF@85,NoF@90,NoF@95,IoU-AUC"
    result = CliRunner().invoke(bench_main, ["summary", str(run), "--metrics", shown])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(run / "summary.csv", index_col="dataset")
    assert CliRunner().invoke(bench_main, ["summary", str(unstopped)]).exit_code == 0
    full = pd.read_csv(unstopped / "summary.csv", index_col="dataset")
    assert table.loc["grabcut", "NoC@85"] == full.loc["grabcut", "NoC@85"]
    for column in ("NoC@90", "NoC@95", "NoF@90", "NoF@95"):
        assert np.isnan(table.loc["grabcut", column]), column
    assert np.isnan(table.loc["grabcut", "IoU-AUC"])  # the curves stop before click 20
    line = next(x for x in result.output.splitlines() if x.startswith("grabcut"))
    assert line.count("unavailable") == 5
    assert "IoU-AUC: unavailable, the run stopped each instance at IoU 0.85" in result.output
    assert "NoC@90: unavailable, the run stopped each instance at IoU 0.85" in result.output


def test_report_reference_protocol_is_not_picked_by_argument_order(tmp_path, golden):
    """A 1-1 tie between an early-stopped run and a full one: the report's protocol is the
    full run's whichever order they are given in, and the stopped run's NoC@90 is no value."""
    from bench.reports.compare import find_flags
    from bench.reports.runs import load_runs
    from bench.reports.tables import noc_table, per_instance_runs, summarize_runs

    instances = golden_instances(golden, "GrabCut")[:6]
    protocol = {**OLD_PROTOCOL, "stop_at_iou": 0.85, "noc_thresholds": [0.8, 0.85]}
    stopped = write_run(tmp_path / "stopped", "GrabCut", instances, protocol=protocol, model="s")
    full = write_run(tmp_path / "full", "GrabCut", instances, model="f")
    for order in ((stopped, full), (full, stopped)):
        runs = load_runs(list(order))
        flags = find_flags(runs)
        assert flags.protocol["stop_at_iou"] is None
        label = {r.path: r.label for r in runs}
        assert not flags.run_flagged(label[full]) and flags.run_flagged(label[stopped])
        summaries = summarize_runs(runs)
        table = noc_table(runs, summaries, flags, per_instance_runs(runs))
        row = table.display.loc[label[stopped] + "†"]
        assert row[("GrabCut", "NoC@90")] == "–" and row[("GrabCut", "NoC@85")] != "–"
        assert any("NoC@90 unavailable" in note for note in table.notes)


def test_iou_auc_nocs_and_nof_equal_the_rclicks_notebook(golden):
    """RClicks' "IoU@20" (cell 7: np.trapz(ious, axis=1) / 19), NoC@90 and NoF@90 per
    instance, for the Base run and the 10 click groups of every model, and the cell-8 means."""
    reference = json.loads((golden / "metrics" / "rclicks_metrics.json").read_text())
    cell7 = {(r["model"], r["mode"]): r for r in reference["all_idxs_cell7"]}
    cell8 = {(r["model"], r["mode"]): r["metric"] for r in reference["metrics_cell8"]}
    checked = 0
    for model, runs in reference["inputs"].items():
        for group in ["Base"] + reference["groups"]:
            ious = runs[group]["iou"]
            frame = trajectories_of("GrabCut", {str(i): s for i, s in enumerate(ious)}, np.float64)
            per = metrics.per_instance(frame, "IoU-AUC,NoC@90,NoF@90")
            row = cell7[(model, f"{group}_IOU")]
            np.testing.assert_allclose(per["IoU-AUC"], row["iou"], rtol=1e-12, atol=0)
            np.testing.assert_array_equal(per["NoC@90"], row["noc"])
            assert per["NoF@90"].sum() == row["over_max"][0]
            checked += 1
        base = metrics.summarize(frame_of_base(runs), names="IoU-AUC").loc["GrabCut", "IoU-AUC"]
        assert base == pytest.approx(cell8[(model, "Base_iou")], rel=1e-12)
    assert checked == 3 * 11


def frame_of_base(runs) -> pd.DataFrame:
    return trajectories_of(
        "GrabCut", {str(i): s for i, s in enumerate(runs["Base"]["iou"])}, np.float64
    )
