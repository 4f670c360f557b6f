"""`bench profile` end to end: the command writes profile.csv with the report's columns."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from bench.cli.profile import profile_command
from bench.profile import CSV_COLUMNS


def _invoke(*args: str):
    result = CliRunner().invoke(profile_command, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _read(path):
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


@pytest.mark.slow
def test_counts_and_memory_for_two_models_at_two_sizes(tmp_path, golden):
    result = _invoke(
        "--models", "ritm-hrnet18s,simpleclick-vit-xt", "--sizes", "224,448", "--no-spc",
        "--out", str(tmp_path),
    )  # fmt: skip
    header, rows = _read(tmp_path / "profile.csv")
    assert tuple(header[: len(CSV_COLUMNS)]) == CSV_COLUMNS
    assert [(r["model"], r["input_size"]) for r in rows] == [
        ("ritm-hrnet18s", "224"),
        ("ritm-hrnet18s", "448"),
        ("simpleclick-vit-xt", "224"),
        ("simpleclick-vit-xt", "448"),
    ]
    compute = json.loads((golden / "compute.json").read_text())["models"]
    xt = {tuple(r["input"][2:]): r for r in compute["simpleclick_vit_xtiny448"]["runs"]}
    for row in rows[2:]:
        size = int(row["input_size"])
        assert float(row["gflops_paper"]) == pytest.approx(
            xt[size, size]["thop_GFLOPs_2xMACs"], abs=5e-6
        )
        assert float(row["params_M"]) == 4.053577
        assert float(row["params_thop_M"]) == 3.716193
        assert float(row["params_backbone_M"]) == 2.88436
    # HRNet is fully convolutional: FLOPs scale with the pixel count.
    ratio = float(rows[1]["gflops_paper"]) / float(rows[0]["gflops_paper"])
    assert ratio == pytest.approx(4.0, rel=0.01)
    for row in rows:
        assert row["device"] == "cpu" and row["dtype"] == "float32"
        assert "thop" in row["flops_convention_paper"]
        assert "FlopCounterMode" in row["flops_convention_full"]
        assert row["mem_kind"] == "cpu_peak_rss_increase"
        assert float(row["peak_mem_MiB"]) > float(row["params_M"]) * 4 * 1e6 / 2**20
        assert row["spc_model_median_s"] == row["spc_dataset"] == ""  # --no-spc
    assert "GFLOPs paper" in result.output and "simpleclick-vit-xt" in result.output


def test_checkpoint_is_loaded_for_the_named_model(tmp_path, golden):
    checkpoint = golden / "equivalence" / "ritm_hrnet18s_random.pth"
    _invoke(
        "--models", "ritm-hrnet18s", "--checkpoint", str(checkpoint), "--no-spc",
        "--out", str(tmp_path),
    )  # fmt: skip
    _, [row] = _read(tmp_path / "profile.csv")
    assert row["checkpoint"] == str(checkpoint)
    assert float(row["gflops_paper"]) == pytest.approx(17.93831, abs=5e-6)
    assert float(row["params_M"]) == 4.220047


def test_a_checkpoint_of_another_variant_is_refused(golden):
    checkpoint = golden / "equivalence" / "ritm_hrnet18s_random.pth"
    result = CliRunner().invoke(
        profile_command, ["--models", "ritm-hrnet32", "--checkpoint", str(checkpoint), "--no-spc"]
    )
    assert result.exit_code != 0
    assert "hrnet18s" in str(result.exception) or "hrnet18s" in result.output


def test_unknown_model_is_a_usage_error():
    result = CliRunner().invoke(profile_command, ["--models", "simpleclick-vit-q", "--no-spc"])
    assert result.exit_code == 2
    assert "simpleclick-vit-q" in result.output and "ritm-hrnet18s" in result.output


@pytest.mark.slow
def test_seconds_per_click_over_the_demo_images(tmp_path):
    _invoke(
        "--models", "simpleclick-vit-xt", "--sizes", "224", "--clicks", "2", "--warmup", "1",
        "--dataset", "demo", "--limit", "2", "--threads", "1", "--out", str(tmp_path),
    )  # fmt: skip
    _, [row] = _read(tmp_path / "profile.csv")
    assert row["spc_dataset"] == "demo (first 2 instances)"
    assert row["torch_threads"] == "1"
    assert int(row["spc_timed_clicks"]) == 2 * 2 - 1  # 2 demo images x 2 clicks - warm-up
    assert int(row["spc_warmup_clicks"]) == 1
    model, harness = float(row["spc_model_median_s"]), float(row["spc_harness_median_s"])
    assert model > 0 and harness > 0
    assert float(row["spc_model_iqr_s"]) >= 0
    assert float(row["spc_total_median_s"]) >= model


def test_threads_option_is_recorded_and_undone(tmp_path):
    import torch

    before = torch.get_num_threads()
    _invoke("--models", "ritm-hrnet18s", "--sizes", "64", "--no-spc", "--threads", "1",
            "--out", str(tmp_path))  # fmt: skip
    _, [row] = _read(tmp_path / "profile.csv")
    assert row["torch_threads"] == "1"
    assert torch.get_num_threads() == before
