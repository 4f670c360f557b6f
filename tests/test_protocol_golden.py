"""The click rule, IoU and metrics against the official trajectories of every GrabCut and
DAVIS instance (`golden/protocol/*.json`, produced by the official clicker and loop)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bench import metrics
from bench.cli import main
from bench.datasets import list_samples
from bench.store import read_trajectories

PLUGIN = Path(__file__).parent / "plugins" / "shifted_reveal.py"


@pytest.fixture(scope="module", params=["GrabCut", "DAVIS"])
def golden_run(request, golden, data_root, tmp_path_factory):
    """The golden fake predictor run through `bench run`, as a third-party plugin file."""
    name = request.param
    reference = json.loads((golden / "protocol" / f"{name}.json").read_text())
    out = tmp_path_factory.mktemp(f"run-{name}")
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--model",
            f"{PLUGIN}:make_predictor",
            "--datasets",
            name.lower(),
            "--data-root",
            str(data_root),
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    frame = read_trajectories(out)
    records = []
    for sid, group in frame.groupby("sample_id", sort=False):
        clicks = [[int(r.y), int(r.x), bool(r.positive)] for r in group.itertuples()]
        records.append((sid, clicks, group["iou"].to_numpy()))
    return reference, records, out


def test_instances_in_official_order(golden_run, data_root):
    reference, records, _ = golden_run
    refs = list_samples(reference["dataset"].lower(), data_root)
    assert len(records) == len(refs) == reference["num_instances"]
    for ref, (sid, _, _), inst in zip(refs, records, reference["instances"]):
        (sample,) = ref.load()
        assert sid == sample.id
        assert sample.image_path.name == inst["image"]
        assert list(sample.gt.shape) == inst["hw"]


def test_clicks_and_float32_ious_identical(golden_run):
    reference, records, _ = golden_run
    for (sid, clicks, ious), inst in zip(records, reference["instances"]):
        assert clicks == inst["clicks"], sid
        assert ious.dtype == np.float32
        np.testing.assert_array_equal(ious, np.asarray(inst["ious"], np.float32), sid)


def test_per_instance_noc_and_nof(golden_run):
    reference, records, _ = golden_run
    for (_, _, ious), inst in zip(records, reference["instances"]):
        for key, thr in zip(("0.80", "0.85", "0.90", "0.95"), reference["iou_thrs_exact"]):
            value = metrics.noc(ious, thr)
            assert value == inst["noc"][key]
            assert (value == 20) == inst["nof"][key]


def test_summary_matches_official_aggregates(golden_run):
    reference, _, out = golden_run
    result = CliRunner().invoke(main, ["summary", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "summary.csv", index_col="dataset")
    row = table.loc[reference["dataset"].lower()]
    agg = reference["aggregates"]
    assert row["instances"] == reference["num_instances"]
    for key in ("80", "85", "90"):
        assert abs(row[f"NoC@{key}"] - agg["NoC"][f"0.{key}"]) < 1e-9
    for key in ("85", "90"):
        assert row[f"NoF@{key}"] == agg["NoF"][f"0.{key}"]
    miou = [row[f"mIoU@{k}"] for k in range(1, 21)]
    np.testing.assert_allclose(miou, agg["mIoU_at_k"], atol=1e-6)


def test_dataset_aggregates(golden_run):
    reference, records, _ = golden_run
    seqs = [ious for _, _, ious in records]
    agg = reference["aggregates"]
    for key, thr in zip(("0.80", "0.85", "0.90", "0.95"), reference["iou_thrs_exact"]):
        values = metrics.nocs(seqs, thr)
        assert abs(values.mean() - agg["NoC"][key]) < 1e-9
        assert metrics.nof(values) == agg["NoF"][key]
    np.testing.assert_allclose(metrics.miou_at_k(np.stack(seqs)), agg["mIoU_at_k"], atol=1e-6)


def test_official_thresholds_are_the_arange_values(golden):
    reference = json.loads((golden / "protocol" / "GrabCut.json").read_text())
    assert metrics.noc_thresholds(1.01).tolist() == reference["iou_thrs_exact"]
    assert metrics.noc_thresholds(0.90).tolist() == reference["iou_thrs_exact"][:3]


def test_nof_rules_differ_exactly_by_hits_at_the_last_click(golden_run):
    """Instances reaching a threshold exactly at click 20 are failures only under the official
    rule (GrabCut: 2 at 0.90; DAVIS: 16 at 0.90, 4 at 0.85; golden/protocol/README.md)."""
    reference, _, out = golden_run
    tables = {}
    for rule in ("official", "never-reached"):
        result = CliRunner().invoke(main, ["summary", str(out), "--nof-rule", rule])
        assert result.exit_code == 0, result.output
        tables[rule] = pd.read_csv(out / "summary.csv", index_col="dataset")
    name = reference["dataset"].lower()
    thresholds = dict(zip(("0.80", "0.85", "0.90"), reference["iou_thrs_exact"]))
    for key, col in (("0.85", "NoF@85"), ("0.90", "NoF@90")):
        thr = np.float32(thresholds[key])
        at_last = sum(
            1
            for inst in reference["instances"]
            if inst["noc"][key] == 20 and np.float32(inst["ious"][19]) >= thr
        )
        assert tables["official"].loc[name, col] - tables["never-reached"].loc[name, col] == at_last
