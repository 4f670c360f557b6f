"""`bench profile` rows of the ClickSEG models against golden/clickseg/compute.json (thop counts
of the official networks, exact), and the CLI on FocalClick with its click loop."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from bench.cli import main as bench_main
from bench.profile import resolve_target
from bench.profile.clickseg import count_clickseg_network

MODELS = {
    "focalclick-segformer-b0-s2": "focalclick_segformer_b0_s2",
    "focalclick-segformer-b3-s2": "focalclick_segformer_b3_s2",
    "focalclick-hrnet18s-s2": "focalclick_hrnet18s_s2",
    "cdnet-resnet34": "cdnet_resnet34",
}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def compute(golden):
    return json.loads((golden / "clickseg" / "compute.json").read_text())["models"]


def _thop_runs(record):
    runs = [r for r in record["runs"] if r["counter"] == "thop"]
    forward = next(r for r in runs if r["what"].startswith("full model forward"))
    refiner = next((r for r in runs if r["what"].startswith("refiner")), None)
    return forward, refiner


@pytest.mark.parametrize("name", list(MODELS))
def test_thop_counts_equal_the_official_networks(compute, name):
    target = resolve_target(name)
    assert target.family == "clickseg"
    assert target.size == compute[MODELS[name]]["evaluation_input"]
    counts = count_clickseg_network(target, target.size)
    forward, refiner = _thop_runs(compute[MODELS[name]])
    assert counts.paper.macs == forward["thop_MACs"]
    assert counts.paper.params == forward["thop_params"]
    assert counts.params.total == compute[MODELS[name]]["full_param_count"]
    if refiner is None:
        assert counts.refiner_paper is None  # CDNet has no refiner
    else:
        assert counts.refiner_paper.macs == refiner["thop_MACs"]
        assert counts.refiner_paper.params == refiner["thop_params"]
    # FlopCounterMode sees what thop leaves out (attention / FDM matmuls, PDM is not run here).
    assert counts.full_flops > 0


def test_profile_cli_rows_with_clickseg_convention_and_click_loop(data_root, tmp_path):
    result = CliRunner().invoke(
        bench_main,
        ["profile", "--models", "focalclick-segformer-b0-s2", "--device", "cpu",
         "--dataset", "grabcut", "--data-root", str(data_root), "--limit", "1",
         "--clicks", "3", "--warmup", "1", "--threads", "1", "--out", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    row = pd.read_csv(tmp_path / "profile.csv").iloc[0]
    assert row["model"] == "focalclick-segformer-b0-s2" and row["input_size"] == 256
    assert row["gflops_paper"] == pytest.approx(3.42177, abs=1e-5)
    assert row["gmacs_clickseg"] == pytest.approx(row["gflops_paper"] / 2)
    assert "count_flops.py" in row["flops_convention_clickseg"]
    assert row["gflops_refiner_paper"] == pytest.approx(0.33659, abs=1e-5)
    assert row["spc_timed_clicks"] == 2 and row["spc_model_median_s"] > 0
