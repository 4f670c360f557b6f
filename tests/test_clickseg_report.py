"""A FocalClick run through the CLI, reported beside SimpleClick Table 2's FocalClick numbers.

The run uses the real `focalclick-segformer-b0-s2` predictor with the golden random-weight
official checkpoint (so its NoC is whatever random weights give); what is checked is that the
report shows the published FocalClick SegFormer-B0 (SBD-trained) values and sources beside it,
and that the manifest records the predictor settings (infer size 256, official threshold 0.5).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from bench.cli import main as bench_main
from bench.reports.build import build_report
from bench.reports.reference import known_references, published_compute, published_metric

TABLE2 = "SimpleClick (ICCV 2023, arXiv 2210.11006) Table 2"
MAX_CLICKS = 3


def test_clickseg_reference_keys_follow_the_registry_names(shared):
    transcription = pd.read_csv(shared / "spec" / "published_simpleclick.csv", dtype=str)
    keys = set(known_references())
    assert {
        "focalclick-segformer-b0-s2/sbd",
        "focalclick-segformer-b0-s2/cocolvis",
        "focalclick-segformer-b3-s2/cocolvis",
        "focalclick-hrnet18s-s2/sbd",
        "cdnet-resnet34/sbd",
        "cdnet-resnet34/cocolvis",
    } <= keys
    for key, method, backbone, train in [
        ("focalclick-segformer-b3-s2/cocolvis", "FocalClick", "SegFormer-B3", "COCO+LVIS"),
        ("cdnet-resnet34/sbd", "CDNet", "ResNet-34", "SBD"),
        ("focalclick-hrnet18s-s2/sbd", "FocalClick", "HRNet-18s", "SBD"),
    ]:
        printed = transcription[
            (transcription["method"] == method)
            & (transcription["backbone"] == backbone)
            & (transcription["train_set"] == train)
            & (transcription["dataset"] == "DAVIS")
            & (transcription["metric"] == "NoC@90")
        ]
        got = published_metric(key, "DAVIS", "NoC@90")
        assert got.value == float(printed["value"].item()) and got.source == TABLE2
    # Table 5 lists FocalClick's / CDNet's networks by backbone; their counts are ours (thop).
    assert published_compute("focalclick-segformer-b0-s2/sbd", "params_M").value == 3.72
    assert published_compute("cdnet-resnet34/sbd", "gflops", "384").value == 113.60


@pytest.mark.slow
def test_report_shows_published_focalclick_values_beside_the_run(golden, data_root, tmp_path):
    checkpoint = golden / "clickseg" / "equivalence" / "focalclick_segformer_b0_s2_random.pth"
    out = tmp_path / "run"
    result = CliRunner().invoke(
        bench_main,
        ["run", "--out", str(out), "--no-progress", "--max-clicks", str(MAX_CLICKS),
         "--model", "focalclick-segformer-b0-s2", "--checkpoint", str(checkpoint),
         "--device", "cpu", "--datasets", "grabcut", "--data-root", str(data_root),
         "--limit", "1", "--reference", "focalclick-segformer-b0-s2/sbd"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    manifest = json.loads((out / "manifest.json").read_text())
    text = json.dumps(manifest)
    assert '"infer_size": 256' in text and '"official_threshold": 0.5' in text
    report = build_report([out], tmp_path / "r.html", hist_clicks=[1, MAX_CLICKS])
    csv = pd.read_csv(report.files["table2-noc"]["csv"]).set_index("metric")
    for metric, published in (("NoC@85", 1.66), ("NoC@90", 1.90)):  # Table 2, B0, SBD, GrabCut
        assert csv.at[metric, "published"] == published
        assert csv.at[metric, "published_source"] == TABLE2
        measured = csv.at[metric, "value"]
        assert 1 <= measured <= MAX_CLICKS
        assert csv.at[metric, "difference"] == pytest.approx(measured - published)
    assert "focalclick-segformer-b0-s2/sbd" in report.html.read_text()
