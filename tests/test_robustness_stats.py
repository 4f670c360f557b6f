"""RClicks' robustness statistics (`bench.robustness`) against the notebook's own run
(`golden/metrics/rclicks_metrics.json`: 3 models x 30 GrabCut instances, Base and G1..G10 x 20
clicks, real-user and sampled first clicks), per-instance values from `bench.metrics`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bench import metrics
from bench.robustness import (
    GROUPS,
    figure_names,
    group_of,
    notebook_statistics,
    nsr_per_instance,
    robustness_row,
    user_first_click,
)

SUFFIX = {"NoC@90": "noc", "IoU-AUC": "iou", "NoF@90": "over_max"}
FLOAT32_MODES = {"H1 - H2", "(H1 - H2) / H2", "G_mean@10", "G_std@10", "nsrperimage"}


@pytest.fixture(scope="module")
def reference(golden) -> dict:
    return json.loads((golden / "metrics" / "rclicks_metrics.json").read_text())


def _per_instance(ious: list[list[float]]) -> pd.DataFrame:
    rows = [("GrabCut", str(i), k + 1, v) for i, seq in enumerate(ious) for k, v in enumerate(seq)]
    frame = pd.DataFrame(rows, columns=["dataset", "sample_id", "click", "iou"])
    per = metrics.per_instance(frame, list(SUFFIX))
    return per.loc["GrabCut"]


@pytest.fixture(scope="module")
def runs(reference) -> dict[str, dict[str, pd.DataFrame]]:
    """model -> run (Base, G1..G10) -> per-instance NoC@90, NoF@90, IoU-AUC."""
    out = {}
    for model, inputs in reference["inputs"].items():
        out[model] = {"Base": _per_instance(inputs["Base"]["iou"])}
        for name, group in zip(GROUPS, reference["groups"], strict=True):
            out[model][name] = _per_instance(inputs[group]["iou"])
    return out


def _close(got: float, want: float, mode: str) -> None:
    rel = 1e-6 if mode in FLOAT32_MODES else 1e-12
    assert got == pytest.approx(want, rel=rel, abs=1e-12 if want == 0 else 0), mode


def test_groups_are_the_notebooks_trajectory_bounds(reference):
    names = [f"Trajectory_BOUNDS_{(g - 1) / 10:.3f}_{g / 10:.3f}" for g in range(1, 11)]
    assert names == reference["groups"]
    assert [group_of((g - 1) / 10, g / 10) for g in range(1, 11)] == list(GROUPS)
    assert group_of(0.0, 1.0) is None


def test_every_cell8_figure_of_every_model(reference, runs):
    cell8 = {(r["model"], r["mode"]): r["metric"] for r in reference["metrics_cell8"]}
    cell7 = {(r["model"], r["mode"]): r for r in reference["all_idxs_cell7"]}
    checked = set()
    for model, per in runs.items():
        for metric, suffix in SUFFIX.items():
            base = per["Base"][metric].to_numpy()
            groups = [per[g][metric].to_numpy() for g in GROUPS]
            if metric == "NoF@90":
                base = np.array([base.sum()], dtype=np.int64)
                groups = [np.array([g.sum()], dtype=np.int64) for g in groups]
            elif metric == "NoC@90":
                base, groups = base.astype(np.int64), [g.astype(np.int64) for g in groups]
            modes = notebook_statistics(base, groups).modes
            for mode, value in modes.items():
                _close(value, cell8[(model, f"{mode}_{suffix}")], mode)
                checked.add(f"{mode}_{suffix}")
        # NSR: cell 7's per-instance arrays and their cell-8 means.
        nsr = cell7[(model, "NSR_IOU")]
        aucs = [per[g]["IoU-AUC"].to_numpy() for g in GROUPS]
        nocs = [per[g]["NoC@90"].to_numpy().astype(np.int64) for g in GROUPS]
        np.testing.assert_allclose(nsr_per_instance(aucs), nsr["iou"], rtol=1e-6)
        np.testing.assert_allclose(nsr_per_instance(nocs, np.float64), nsr["noc"], rtol=1e-12)
        _close(float(nsr_per_instance(aucs).mean()), cell8[(model, "nsrperimage_iou")], "nsr")
        noc_nsr = float(nsr_per_instance(nocs, np.float64).mean())
        _close(noc_nsr, cell8[(model, "nsrperimage_noc")], "x")
        assert cell8[(model, "nsrperimage_over_max")] == 0  # the notebook's placeholder [0]
        # First-click statistics of several users per instance (User / SamplingUsersCount).
        for mode, run in (("User@1", "User"), ("NUser@1", "SamplingUsersCount")):
            means, stds, nsrs = user_first_click(reference["inputs"][model][run]["iou"])
            row = cell7[(model, f"{mode}_IOU")]
            np.testing.assert_allclose(means, row["iou"], rtol=1e-12)
            np.testing.assert_allclose(stds, row["noc"], rtol=1e-12)
            np.testing.assert_allclose(nsrs, row["over_max"], rtol=1e-12)
            _close(float(means.mean()), cell8[(model, f"{mode}_iou")], "x")
            _close(float(stds.mean()), cell8[(model, f"{mode}_std")], "x")
            _close(float(nsrs.mean()), cell8[(model, f"{mode}_snr")], "x")
            checked |= {f"{mode}_iou", f"{mode}_std", f"{mode}_snr"}
        base1 = per["Base"]  # Base@1: the base run's IoU after the first click
        first = np.array([s[0] for s in reference["inputs"][model]["Base"]["iou"]])
        _close(float(first.mean()), cell8[(model, "Base@1_iou")], "x")
        assert len(base1) == 30
        checked |= {"nsrperimage_iou", "nsrperimage_noc", "Base@1_iou"}
    every = {r["mode"] for r in reference["metrics_cell8"]}
    # Base@1_std / _snr and nsrperimage_over_max are the notebook's zero placeholders.
    assert every - checked == {"Base@1_std", "Base@1_snr", "nsrperimage_over_max"}


TABLE = {
    "Base NoC@20": "NoC@90 Base",
    "Base NoF@20": "NoF@90 Base",
    "Base IoU@20": "IoU-AUC Base",
    "Sample NoC@20": "NoC@90 Sample",
    "Sample NoF@20": "NoF@90 Sample",
    "Sample IoU@20": "IoU-AUC Sample",
    "Sample STD NoC@20": "NoC@90 Sample STD",
    "Sample STD NoF@20": "NoF@90 Sample STD",
    "Sample STD IoU@20": "IoU-AUC Sample STD",
    "ΔSB NoC(%)": "NoC@90 ΔSB",
    "ΔSB IoU(D)": "IoU-AUC ΔSB",
    "ΔSB NoF(D)": "NoF@90 ΔSB",
    "ΔGR NoC(%)": "NoC@90 ΔGR",
    "ΔGR IoU(D)": "IoU-AUC ΔGR",
    "ΔGR NoF(D)": "NoF@90 ΔGR",
    "ΔHH NoC(%)": "NoC@90 ΔHH",
    "ΔHH IoU(D)": "IoU-AUC ΔHH",
    "ΔHH NoF(D)": "NoF@90 ΔHH",
    "Sample NSR IoU@20": "IoU-AUC NSR",
}


def test_robustness_rows_equal_the_paper_table(reference, runs):
    """Cells 9-11's columns (Tables 4, 9-11) from `robustness_row`, with bootstrap CIs."""
    tables = {r["Model"]: r for r in reference["table_cells_9_11"]}
    for model, per in runs.items():
        row = robustness_row(per["Base"], {g: per[g] for g in GROUPS}, n_resamples=500)
        assert row["instances"] == 30
        assert set(figure_names()) <= set(row)
        for column, figure in TABLE.items():
            want = tables[model][column]
            float32 = "Sample" in column or "ΔHH" in column or "NSR" in column
            if "ΔSB" in column:
                float32 = True  # G_mean is float32
            assert row[figure] == pytest.approx(want, rel=1e-6 if float32 else 1e-12), column
            if figure.startswith("NoF@90"):
                assert f"{figure}_lo" not in row  # a count, not a mean over instances
            else:
                assert row[f"{figure}_lo"] <= row[figure] <= row[f"{figure}_hi"], figure
        for g in GROUPS:  # group means, G1..G10 (cell 8)
            assert row[f"IoU-AUC {g}"] == pytest.approx(per[g]["IoU-AUC"].mean(), rel=1e-12)
    strings = {r["Model"]: r for r in reference["paper_strings_cell12_cols_cell14"]}
    for model, per in runs.items():
        row = robustness_row(per["Base"], {g: per[g] for g in GROUPS}, n_resamples=100)
        text = f"{row['NoC@90 Sample']:.2f}±{row['NoC@90 Sample STD']:.2f}"
        assert text == strings[model]["Paper NoC@20"]
        assert f"{100 * row['NoC@90 ΔSB']:.2f}" == strings[model]["Paper NoC BaseUp"]
        assert f"{100 * row['NoC@90 ΔGR']:.2f}" == strings[model]["Paper NoC G1-G10"]


def test_rows_refuse_groups_on_other_instances(runs):
    per = runs["sam_hq_vit_b"]
    groups = {g: per[g] for g in GROUPS}
    groups["G4"] = per["G4"].iloc[:-1]
    with pytest.raises(ValueError, match="G4 holds other instances"):
        robustness_row(per["Base"], groups)
    del groups["G4"]
    with pytest.raises(ValueError, match="G4 are missing"):
        robustness_row(per["Base"], groups)
