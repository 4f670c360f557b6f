"""The report's RClicks section and robustness.csv from run folders: three `bench robustness`
folders written from the RClicks notebook's own inputs (`golden/metrics/rclicks_metrics.json`,
3 models x Base + G1..G10 x 30 GrabCut instances x 20 clicks, stored as float32 like every run);
robustness.csv equals the notebook's table and the ranking flags its G1 / Base means."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bench.reports.build import build_report
from bench.robustness import GROUPS, TABLE, write_plan, write_robustness
from tests.run_folders import write_run

PROTOCOL = {"max_clicks": 20, "pred_thr": 0.49, "stop_at_iou": None, "click_model": "x"}


@pytest.fixture(scope="module")
def reference(golden) -> dict:
    return json.loads((golden / "metrics" / "rclicks_metrics.json").read_text())


@pytest.fixture(scope="module")
def folders(tmp_path_factory, reference) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rclicks-report")
    out = {}
    for model, inputs in reference["inputs"].items():
        folder = root / model
        runs = {"base": (folder / "base", "official")}
        runs |= {g: (folder / g, f"rclicks:prior=dt,group={g[1:]}") for g in GROUPS}
        names = dict(zip(("base", *GROUPS), ("Base", *reference["groups"]), strict=True))
        for label, (run_dir, click_model) in runs.items():
            ious = inputs[names[label]]["iou"]
            instances = [(f"img{i:02d}", seq) for i, seq in enumerate(ious)]
            protocol = {**PROTOCOL, "click_model": click_model}
            write_run(run_dir, "GrabCut", instances, model=model, protocol=protocol)
        write_plan(folder, runs, "dt", 42)
        out[model] = folder
    return out


COLUMNS = {
    "Base NoC@20": "NoC@90 Base",
    "Base NoF@20": "NoF@90 Base",
    "Base IoU@20": "IoU-AUC Base",
    "Sample NoC@20": "NoC@90 Sample",
    "Sample STD NoC@20": "NoC@90 Sample STD",
    "Sample NoF@20": "NoF@90 Sample",
    "Sample IoU@20": "IoU-AUC Sample",
    "ΔSB NoC(%)": "NoC@90 ΔSB",
    "ΔGR NoC(%)": "NoC@90 ΔGR",
    "ΔHH NoC(%)": "NoC@90 ΔHH",
    "ΔSB IoU(D)": "IoU-AUC ΔSB",
    "ΔGR IoU(D)": "IoU-AUC ΔGR",
    "ΔHH IoU(D)": "IoU-AUC ΔHH",
    "ΔGR NoF(D)": "NoF@90 ΔGR",
    "Sample NSR IoU@20": "IoU-AUC NSR",
}


@pytest.mark.slow
def test_robustness_csv_from_run_folders_equals_the_notebook(folders, reference):
    tables = {r["Model"]: r for r in reference["table_cells_9_11"]}
    for model, folder in folders.items():
        write_robustness(folder)
        table = pd.read_csv(folder / TABLE, index_col="dataset")
        row = table.loc["grabcut"]
        assert row["instances"] == 30 and row["model"] == model and row["prior"] == "dt"
        for column, figure in COLUMNS.items():
            # IoUs are stored as float32 in a run folder: IoU-AUC moves by ~1e-8.
            assert row[figure] == pytest.approx(tables[model][column], rel=2e-6), column
            if not figure.startswith("NoF"):
                assert row[f"{figure}_lo"] <= row[figure] <= row[f"{figure}_hi"]


@pytest.mark.slow
def test_report_section_flags_exactly_the_rankings_that_change(folders, reference, tmp_path):
    cell8 = {(r["model"], r["mode"]): r["metric"] for r in reference["metrics_cell8"]}
    out = build_report(list(folders.values()), tmp_path / "report.html")
    html = out.html.read_text()
    assert 'id="rclicks"' in html and 'id="figure-rclicks"' in html
    assert any(f.key == "figure-rclicks" for f in out.figures)
    assert set(out.files) >= {"rclicks-deltas", "rclicks-ranking"}
    # The base runs join the ordinary tables (Table 2 shows the methods under the official
    # clicker); the perturbation robustness table still renders.
    assert "Table 2: NoC" in html and "Robustness to the simulated user" in html
    ranking = pd.read_csv(out.files["rclicks-ranking"]["csv"])
    models = list(folders)
    assert len(ranking) == 3 * 2  # 3 pairs x (NoC@90, IoU-AUC)
    suffix = {"NoC@90": "noc", "IoU-AUC": "iou"}
    flagged = 0
    for _, r in ranking.iterrows():
        a, b = models.index(r["a"]), models.index(r["b"])
        assert a < b
        key = suffix[r["metric"]]
        base = [cell8[(models[i], f"Base_{key}")] for i in (a, b)]
        g1 = [cell8[(models[i], f"G1_{key}")] for i in (a, b)]
        assert [r["base_a"], r["base_b"]] == pytest.approx(base, rel=1e-6)
        assert [r["g1_a"], r["g1_b"]] == pytest.approx(g1, rel=1e-6)
        lower = r["metric"] == "NoC@90"
        assert bool(r["changes"]) == (_better(base, lower) != _better(g1, lower)), r.to_dict()
        flagged += bool(r["changes"])
    assert f"{flagged} pairwise ranking(s) change" in html
    deltas = pd.read_csv(out.files["rclicks-deltas"]["csv"])
    assert set(deltas["method"]) == set(models)
    assert flagged == 0  # the notebook's three synthetic methods keep their order under G1


@pytest.mark.slow
def test_a_ranking_that_changes_is_flagged(reference, tmp_path):
    """B is worse than A under the official clicker (its base run reaches each IoU one click
    later) but better under G1 (its G1 clicks are A's G10 clicks): that pair is flagged."""
    inputs = reference["inputs"]["cocolvis_vit_base"]
    names = dict(zip(("base", *GROUPS), ("Base", *reference["groups"]), strict=True))
    made = {}
    for method in ("A", "B"):
        folder = tmp_path / method
        runs = {"base": (folder / "base", "official")}
        runs |= {g: (folder / g, f"rclicks:prior=dt,group={g[1:]}") for g in GROUPS}
        for label, (run_dir, click_model) in runs.items():
            source = names["G10"] if (method, label) == ("B", "G1") else names[label]
            shift = delayed if (method, label) == ("B", "base") else (lambda seq: list(seq))
            instances = [(f"i{i}", shift(seq)) for i, seq in enumerate(inputs[source]["iou"])]
            protocol = {**PROTOCOL, "click_model": click_model}
            write_run(run_dir, "GrabCut", instances, model=method, protocol=protocol)
        write_plan(folder, runs, "dt", 42)
        made[method] = folder
    out = build_report([made["A"], made["B"]], tmp_path / "report.html")
    ranking = pd.read_csv(out.files["rclicks-ranking"]["csv"]).set_index("metric")
    noc = ranking.loc["NoC@90"]
    assert noc["base_a"] < noc["base_b"] and noc["g1_a"] > noc["g1_b"] and noc["changes"]
    html = out.html.read_text()
    auc = ranking.loc["IoU-AUC"]
    assert auc["base_a"] > auc["base_b"] and auc["g1_a"] < auc["g1_b"] and auc["changes"]
    assert html.count("⚑ changes") == 1 + 2  # the note's legend + two flagged rows
    assert "2 pairwise ranking(s) change" in html


def delayed(seq: list[float]) -> list[float]:
    """The same IoUs one click later (0 before the first)."""
    return [0.0, *seq[:-1]]


def _better(values: list[float], lower_is_better: bool) -> str:
    """Which of two methods is better on the official numbers (or a tie)."""
    a, b = values
    if a == b:
        return "tie"
    return "a" if (a < b) == lower_is_better else "b"
