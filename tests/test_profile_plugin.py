"""`bench profile --model file.py:factory`: a plugin measured through its calls (FLOPs against
the convolutions' analytic count), and its row in Table 5 and its point in Figure 1."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from bench.cli import main

PLUGIN = f"{Path(__file__).parent / 'plugins' / 'tiny_torch.py'}:make_predictor"


@pytest.mark.slow
def test_plugin_profile_flops_and_report(data_root, tmp_path):
    run = tmp_path / "run"
    common = ["--data-root", str(data_root), "--limit", "2"]
    result = CliRunner().invoke(
        main,
        ["run", "--model", PLUGIN, "--datasets", "grabcut", "--max-clicks", "3", "--out", str(run)]
        + common
        + ["--no-progress"],
    )
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(
        main,
        ["profile", "--model", PLUGIN, "--dataset", "grabcut", "--clicks", "3", "--warmup", "1"]
        + common
        + ["--out", str(run)],
    )
    assert result.exit_code == 0, result.output
    row = pd.read_csv(run / "profile.csv").iloc[0]
    # GrabCut 106024 is 321 x 481; stem: 8 x 3 x 3 x 3 MACs per pixel, head: 1 x 10 per click;
    # FlopCounterMode counts 2 FLOPs per MAC (bias additions are not counted).
    pixels = 321 * 481
    stem, head = 2 * pixels * 8 * 27, 2 * pixels * 10
    assert row["gflops_encoder_full"] == pytest.approx(
        stem / 1e9, abs=1e-6
    )  # profile.csv keeps 6 decimals
    assert row["gflops_decoder_full"] == pytest.approx(
        head / 1e9, abs=1e-6
    )  # profile.csv keeps 6 decimals
    assert row["gflops_full"] == pytest.approx(
        (stem + 3 * head) / 3 / 1e9, abs=1e-6
    )  # profile.csv keeps 6 decimals
    assert row["params_M"] == pytest.approx((8 * 27 + 8 + 10 + 1) / 1e6)
    assert row["spc_model_median_s"] > 0 and row["peak_mem_MiB"] == row["peak_mem_MiB"]
    assert row["spc_timed_clicks"] == 2 * 3 - 1

    from bench.reports.build import build_report

    report = build_report([run], tmp_path / "r.html", (1,))
    table5 = report.tables["compute"]
    assert len(table5.rows) == 1 and "[profile of" not in table5.rows[0].label
    assert any("Profiled through the predictor's calls" in n for n in table5.notes)
    figure1 = next(f for f in report.figures if f.key == "figure1")
    assert "Not shown" not in figure1.caption and "No paper convention for" in figure1.caption
