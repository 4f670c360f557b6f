"""What `bench report` accepts as a user gives it: a folder of runs, a glob with non-run entries
in it, `bench profile --out` folders (matched to the runs' models), runs with fewer clicks than
the default histogram clicks; and the report's small readability rules."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from run_folders import golden_instances, write_run

from bench.cli import main as bench_main
from bench.reports.build import build_report
from bench.reports.compare import for_display
from bench.reports.qualitative import pick_instances
from bench.store import load_masks, save_masks


def profile_csv(folder: Path, model: str, gflops: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        [{"model": model, "input_size": 448, "params_M": 1.0, "gflops_paper": gflops}]
    ).to_csv(folder / "profile.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory, golden) -> Path:
    root = tmp_path_factory.mktemp("runs")
    instances = golden_instances(golden, "GrabCut")[:5]
    write_run(root / "a", "GrabCut", instances, model="grabcut-opencv")
    write_run(root / "b", "GrabCut", instances, model="simpleclick-vit-xt")
    (root / "crashed").mkdir()  # a run folder that never got its manifest
    (root / "crashed" / ".lock").write_text("")
    shard = write_run(root / "x-shards" / "0", "GrabCut", instances, model="grabcut-opencv")
    manifest = json.loads((shard / "manifest.json").read_text())
    manifest["shard"] = {"index": 0, "count": 2}
    (shard / "manifest.json").write_text(json.dumps(manifest))
    (root / "notes.txt").write_text("not a run")
    profile_csv(root / "profile", "simpleclick-vit-xt", 10.5)
    return root


def test_a_folder_of_runs_is_reported_and_non_runs_are_skipped_with_a_note(runs_root, tmp_path):
    result = CliRunner().invoke(
        bench_main, ["report", str(runs_root), "-o", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 0, result.output
    assert "crashed: not a run folder (no manifest.json); skipped" in result.output
    assert "notes.txt: not a run folder (no manifest.json); skipped" in result.output
    html = (tmp_path / "r.html").read_text()
    assert "grabcut-opencv" in html and "simpleclick-vit-xt" in html


def test_a_glob_with_a_shard_parent_and_a_crashed_run_keeps_the_runs(runs_root, tmp_path):
    entries = sorted(str(p) for p in runs_root.iterdir())
    out = build_report(entries, tmp_path / "r.html", hist_clicks=(1,))
    labels = [r.label for r in out.tables["noc"].rows]
    assert labels == ["grabcut-opencv", "simpleclick-vit-xt"]
    assert any("x-shards/0: one shard of a run" in n for n in out.notes)
    assert any("crashed" in n and "skipped" in n for n in out.notes)


def test_nothing_to_report_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(bench_main, ["report", str(tmp_path / "empty")])
    assert result.exit_code == 2
    assert "no run folder" in result.output and "empty: no manifest.json" in result.output


def test_a_profile_folder_is_matched_to_the_runs_of_its_model(runs_root, tmp_path):
    runs = [runs_root / "a", runs_root / "b", runs_root / "profile"]
    out = build_report(runs, tmp_path / "r.html", hist_clicks=(1,))
    compute = out.tables["compute"]
    assert [r.label for r in compute.rows] == ["simpleclick-vit-xt"]
    assert "No profile.csv for: grabcut-opencv" in " ".join(compute.notes)


def test_a_profile_of_another_model_in_a_run_folder_is_not_that_runs_profile(golden, tmp_path):
    run = write_run(tmp_path / "gc", "GrabCut", golden_instances(golden, "GrabCut")[:3],
                    model="grabcut-opencv")  # fmt: skip
    profile_csv(run, "simpleclick-vit-xt", 10.5)
    out = build_report([run], tmp_path / "r.html", hist_clicks=(1,))
    assert out.tables["compute"].empty or not out.tables["compute"].rows
    assert any("profile of simpleclick-vit-xt, which no run here evaluated" in n for n in out.notes)
    assert "profile of simpleclick-vit-xt]" not in out.html.read_text()


def test_the_default_histogram_clicks_follow_the_runs_click_limit(golden, tmp_path):
    instances = [(sid, ious[:3]) for sid, ious in golden_instances(golden, "GrabCut")[:4]]
    protocol = {"max_clicks": 3, "pred_thr": 0.49, "stop_at_iou": None, "click_rule": "official"}
    run = write_run(tmp_path / "short", "GrabCut", instances, protocol=protocol)
    result = CliRunner().invoke(bench_main, ["report", str(run), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "r.html").read_text()
    assert "IoU@1 histograms" in html and "IoU@3 histograms" in html
    bad = CliRunner().invoke(bench_main, ["report", str(run), "--k", "5"])
    assert bad.exit_code == 2 and "1..3" in bad.output  # an explicit --k is still checked


def test_thresholds_are_shown_without_float_noise():
    shown = for_display({"noc_thresholds": [0.8, 0.8500000000000001, 0.9000000000000001]})
    assert json.dumps(shown) == '{"noc_thresholds": [0.8, 0.85, 0.9]}'


def test_one_saved_mask_is_read_without_unpacking_the_others(tmp_path):
    rng = np.random.default_rng(0)
    masks = [rng.random((301, 403)) > 0.5 for _ in range(5)]  # H*W not a multiple of 8
    path = save_masks(tmp_path, "d", "s", masks)
    full = load_masks(path)
    assert full.shape == (5, 301, 403) and (full == np.stack(masks)).all()
    for click in (1, 2, 5, 9):
        assert (load_masks(path, click) == masks[min(click, 5) - 1]).all()
    big = [np.zeros((2000, 3000), bool) for _ in range(20)]
    big_path = save_masks(tmp_path, "d", "big", big)
    tracemalloc.start()
    load_masks(big_path, 20)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 20 * 2000 * 3000 / 4  # well under the 120 MB of 20 unpacked masks


def test_figure7_says_when_an_instance_never_reached_90_percent():
    frame = pd.DataFrame(
        {
            "dataset": "d",
            "sample_id": ["good"] * 3 + ["bad"] * 3,
            "click": [1, 2, 3] * 2,
            "iou": [0.5, 0.95, 0.97, 0.2, 0.4, 0.6],
        }
    )
    picks = {p.sample_id: p for p in pick_instances(frame, 3)}
    assert picks["good"].caption == "after click 2: IoU 0.950, NoC@90 2"
    assert picks["bad"].caption == "after click 3: IoU 0.600, 90 % not reached in 3"


def test_compare_with_one_shared_instance_prints_no_nan(golden, tmp_path):
    instances = golden_instances(golden, "GrabCut")
    a = write_run(tmp_path / "a", "GrabCut", instances[:1], model="a")
    b = write_run(tmp_path / "b", "GrabCut", [(instances[0][0], instances[1][1])], model="b")
    result = CliRunner().invoke(bench_main, ["compare", str(a), str(b)])
    assert result.exit_code == 0, result.output
    assert "nan" not in result.output.lower() and "[no CI: 1 instance]" in result.output


def test_models_list_has_a_header():
    result = CliRunner().invoke(bench_main, ["models", "list"])
    assert result.exit_code == 0
    assert result.output.splitlines()[0].split()[:4] == ["name", "family", "weights", "params"]


def test_many_runs_put_the_legend_beside_the_plot_not_over_it():
    from matplotlib.figure import Figure

    from bench.reports.figures import LEGEND_INSIDE_MAX, place_legend

    for n, inside in ((LEGEND_INSIDE_MAX, True), (LEGEND_INSIDE_MAX + 1, False)):
        fig = Figure(layout="constrained")
        ax = fig.subplots()
        for i in range(n):
            ax.plot([0, 1], [i, i], label=f"run {i}")
        place_legend(ax, fig, "lower right")
        assert (ax.get_legend() is not None) == inside and bool(fig.legends) != inside
