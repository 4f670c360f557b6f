"""`bench report` on small real runs: its tables must hold the trajectories' numbers.

The runs are made by `bench run` itself (GrabCut-OpenCV and the shifted-reveal plugin on the
bundled demo set and on real GrabCut images), so the report is tested on exactly what users
feed it. Expected NoC / mIoU values are recomputed here straight from trajectories.parquet.
"""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import scipy.stats
from click.testing import CliRunner

from bench.cli import main as bench_main
from bench.cli.report import report_command
from bench.reports.build import build_report
from bench.reports.qualitative import pick_instances
from bench.reports.reference import reference_table
from bench.store import read_trajectories

PLUGIN = f"{Path(__file__).parent / 'plugins' / 'shifted_reveal.py'}:make_predictor"
MAX_CLICKS = 10
THRESHOLDS = {"NoC@85": 0.8500000000000001, "NoC@90": 0.9000000000000001}  # official arange


def bench_run(out: Path, *args: str) -> Path:
    """`bench run`; the shifted-reveal fake is an oracle (it reads the ground truth), and here
    its runs stand for methods' runs, so the manifest's oracle mark is cleared: the tables'
    ranking is what these tests check (tests/test_oracle.py checks that oracles are not ranked)."""
    result = CliRunner().invoke(
        bench_main,
        ["run", "--out", str(out), "--no-progress", "--max-clicks", str(MAX_CLICKS), *args],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["model"]["oracle"] = False
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_root) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    demo = ("--datasets", "demo", "--limit", "2", "--save-masks")
    return {
        "grabcut": bench_run(root / "grabcut", "--model", "grabcut-opencv", *demo),
        "reveal": bench_run(root / "reveal", "--model", PLUGIN, *demo),
        "reveal_thr": bench_run(
            root / "reveal_thr", "--model", PLUGIN, "--pred-thr", "0.6", *demo[:4]
        ),
        "reveal_grabcut": bench_run(
            root / "reveal_grabcut",
            "--model",
            PLUGIN,
            "--datasets",
            "grabcut",
            "--data-root",
            str(data_root),
            "--limit",
            "3",
            "--save-masks",
            "--reference",
            "ritm-hrnet18s/cocolvis",
        ),
        # Eight GrabCut instances: a wide reveal disk beats the default on every one (a
        # significant paired test), and the wide one again under a random simulated user.
        **{
            key: bench_run(
                root / key,
                "--model",
                PLUGIN,
                "--datasets",
                "grabcut",
                "--data-root",
                str(data_root),
                "--limit",
                "8",
                *extra,
            )
            for key, extra in (
                ("g8", ()),
                ("g8_wide", ("--model-option", "radius_div=4")),
                (
                    "g8_wide_rie",
                    ("--model-option", "radius_div=4", "--click-model", "random-in-error"),
                ),
            )
        },
    }


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    return build_report([runs["grabcut"], runs["reveal"]], out, hist_clicks=(1, 5))


class TableCells(HTMLParser):
    """Rows of one <table id=...> as (row class, [(text, class, title, ci, mark), ...]): the
    cell's value, its `<span class="ci">` interval and `<sup class="sig">` mark apart."""

    def __init__(self, table_id: str):
        super().__init__()
        self.table_id, self.inside, self.rows, self.cell, self.part = table_id, False, [], None, 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id") == self.table_id:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append((attrs.get("class", ""), []))
        elif self.inside and tag in ("td", "th"):
            self.cell, self.part = ["", attrs.get("class", ""), attrs.get("title", ""), "", ""], 0
        elif self.cell is not None and tag in ("span", "sup"):
            self.part = {"ci": 3, "sig": 4}.get(attrs.get("class", ""), 0)

    def handle_endtag(self, tag):
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            self.rows[-1][1].append(tuple(self.cell))
            self.cell = None
        elif tag in ("span", "sup"):
            self.part = 0

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[self.part] += data


def html_rows(html: str, table_id: str) -> list[tuple[str, list[tuple[str, str, str, str, str]]]]:
    parser = TableCells(table_id)
    parser.feed(html)
    return [r for r in parser.rows if r[0] in ("measured", "published", "difference")]


def expected_nocs(traj: pd.DataFrame, threshold: float, max_clicks: int) -> dict[str, int]:
    """Clicks to reach the threshold (max_clicks when never reached, float32) per sample id."""
    counts = {}
    for sample_id, group in traj.groupby("sample_id", sort=False):
        ious = group.sort_values("click")["iou"].to_numpy(np.float32)
        hit = np.flatnonzero(ious >= np.float32(threshold))
        counts[str(sample_id)] = int(hit[0] + 1 if hit.size else max_clicks)
    return counts


def expected_noc(traj: pd.DataFrame, threshold: float, max_clicks: int) -> float:
    return float(np.mean(list(expected_nocs(traj, threshold, max_clicks).values())))


def expected_ci(values) -> str:
    """The documented method, straight from scipy: 95% percentile bootstrap, 10,000
    resamples, generator seeded with 0."""
    ci = scipy.stats.bootstrap(
        (np.asarray(values, dtype=np.float64),),
        np.mean,
        n_resamples=10_000,
        method="percentile",
        rng=np.random.default_rng(0),
    ).confidence_interval
    return f"[{ci.low:.2f}, {ci.high:.2f}]"


def test_noc_table_holds_the_trajectories_numbers(runs, report):
    csv = pd.read_csv(report.files["table2-noc"]["csv"])
    html = report.html.read_text()
    rows = {cells[0][0]: cells[1:] for _, cells in html_rows(html, "table2-noc")}
    for key, column in (("grabcut", 0), ("reveal", 1)):
        traj = read_trajectories(runs[key])
        method = report.tables["noc"].rows[column].label
        for position, (metric, thr) in enumerate(THRESHOLDS.items()):
            expected = expected_noc(traj, thr, MAX_CLICKS)
            got = csv[(csv["method"] == method) & (csv["metric"] == metric)]
            assert len(got) == 1 and got["dataset"].item() == "demo"
            assert got["value"].item() == pytest.approx(expected, abs=1e-12)
            assert got["instances"].item() == 2
            assert rows[method][position][0] == f"{expected:.2f}"
            per_instance = list(expected_nocs(traj, thr, MAX_CLICKS).values())
            assert rows[method][position][3] == expected_ci(per_instance)
            assert f"[{got['ci_low'].item():.2f}, {got['ci_high'].item():.2f}]" == expected_ci(
                per_instance
            )
    # The two methods really differ, so the comparison below means something.
    values = csv[csv["metric"] == "NoC@90"]["value"].to_numpy()
    assert values[0] != values[1]


def test_best_value_of_each_column_is_bold(report):
    html = report.html.read_text()
    rows = [cells for kind, cells in html_rows(html, "table2-noc") if kind == "measured"]
    latex = report.files["table2-noc"]["tex"].read_text()
    assert "\\toprule" in latex and "\\midrule" in latex and "\\bottomrule" in latex
    for col in range(1, len(rows[0])):
        values = [float(r[col][0]) for r in rows]
        best = min(values)
        for row, value in zip(rows, values):
            assert (row[col][1] == "best") == (value == best)
            # Two instances can never make a paired test significant: bold, but no mark.
            assert row[col][4] == ""
        assert f"\\textbf{{{best:.2f}}} " in latex
    csv = pd.read_csv(report.files["table2-noc"]["csv"])
    tested = csv.dropna(subset=["p_vs_runner_up"])
    assert len(tested) == 2 and not tested["significant_vs_runner_up"].any()
    assert (tested["p_vs_runner_up"] >= 0.05).all()
    assert "not distinguishable from the runner-up" in html


def test_cis_significance_mark_and_robustness_table(runs, tmp_path):
    out = build_report(
        [runs["g8"], runs["g8_wide"], runs["g8_wide_rie"]], tmp_path / "r.html", hist_clicks=(1,)
    )
    html = out.html.read_text()
    labels = [r.label for r in out.tables["noc"].rows]
    plain, wide, rie = (
        next(lb for lb in labels if lb.rstrip("†").endswith(f"({key})"))
        for key in ("g8", "g8_wide", "g8_wide_rie")
    )
    # The run under another click model is flagged in Table 2, never ranked there.
    assert rie.endswith("†") and not plain.endswith("†") and not wide.endswith("†")
    assert "click model random-in-error (seed 0)" in html
    rows = {cells[0][0]: cells[1:] for _, cells in html_rows(html, "table2-noc")}
    per = {
        key: {
            metric: expected_nocs(read_trajectories(runs[key]), thr, MAX_CLICKS)
            for metric, thr in THRESHOLDS.items()
        }
        for key in ("g8", "g8_wide", "g8_wide_rie")
    }
    csv = pd.read_csv(out.files["table2-noc"]["csv"])
    for position, metric in enumerate(THRESHOLDS):
        for key, label in (("g8", plain), ("g8_wide", wide), ("g8_wide_rie", rie)):
            assert rows[label][position][3] == expected_ci(list(per[key][metric].values()))
        # The wide disk is better on every instance: bold and significant (exact Wilcoxon,
        # n = 8, all differences one way: p = 2 / 2^8).
        differences = [per["g8_wide"][metric][s] - per["g8"][metric][s] for s in per["g8"][metric]]
        assert all(d < 0 for d in differences)
        p = scipy.stats.wilcoxon(differences).pvalue
        assert p < 0.01
        assert rows[wide][position][1] == "best" and rows[wide][position][4] == "*"
        assert rows[plain][position][1] == "" and rows[rie][position][1] == ""
        best = csv[(csv["method"] == wide.rstrip("†")) & (csv["metric"] == metric)]
        assert best["p_vs_runner_up"].item() == pytest.approx(p)
        assert best["significant_vs_runner_up"].item()
        assert best["difference_vs_runner_up"].item() == pytest.approx(np.mean(differences))
    latex = out.files["table2-noc"]["tex"].read_text()
    assert f"\\textbf{{{rows[wide][1][0]}}}$^{{*}}$" in latex

    robust = {cells[0][0]: cells[1:] for _, cells in html_rows(html, "robustness-click-models")}
    assert list(robust) == [
        "shifted_reveal.py:make_predictor · official",
        "shifted_reveal.py:make_predictor (radius_div=4) · official",
        "shifted_reveal.py:make_predictor (radius_div=4) · random-in-error (seed 0)",
    ]
    noc90 = {key: per[key]["NoC@90"] for key in per}
    for label, key in zip(robust, ("g8", "g8_wide", "g8_wide_rie")):
        assert robust[label][0][0] == f"{np.mean(list(noc90[key].values())):.2f}"
        assert robust[label][0][3] == expected_ci(list(noc90[key].values()))
    change = [noc90["g8_wide_rie"][s] - noc90["g8_wide"][s] for s in noc90["g8_wide"]]
    assert any(change)  # the random user really changes something here
    delta = robust["shifted_reveal.py:make_predictor (radius_div=4) · random-in-error (seed 0)"]
    assert delta[1][0] == f"{np.mean(change):+.2f}"
    assert delta[1][4] == ("*" if scipy.stats.wilcoxon(change).pvalue < 0.05 else "")
    assert robust["shifted_reveal.py:make_predictor · official"][1][0] == ""
    assert "Δ vs official" in html


def test_runs_with_another_protocol_are_flagged_not_ranked(runs, tmp_path):
    out = build_report([runs["reveal"], runs["reveal_thr"]], tmp_path / "r.html")
    html = out.html.read_text()
    assert "Not directly comparable" in html and "pred_thr" in html
    table = out.tables["noc"]
    flagged = [r.label for r in table.rows if r.label.endswith("†")]
    assert len(flagged) == 1 and "reveal_thr" in flagged[0]
    # Nothing is ranked: a lone comparable run has nobody to beat.
    assert not table.bold.to_numpy().any()
    csv = pd.read_csv(out.files["table2-noc"]["csv"])
    flags = csv.set_index("method")["flags"].fillna("")
    assert flags[flagged[0].rstrip("†")].str.contains("pred_thr").all()
    assert (flags[table.rows[0].label] == "").all()


def test_published_values_and_differences_beside_the_run(runs, tmp_path):
    out = build_report([runs["reveal_grabcut"]], tmp_path / "r.html")
    csv = pd.read_csv(out.files["table2-noc"]["csv"]).set_index("metric")
    ref = reference_table()
    for metric in ("NoC@85", "NoC@90"):
        published = ref[
            (ref["reference"] == "ritm-hrnet18s/cocolvis")
            & (ref["dataset"] == "GrabCut")
            & (ref["metric"] == metric)
        ]
        traj = read_trajectories(runs["reveal_grabcut"])
        expected = expected_noc(traj, THRESHOLDS[metric], MAX_CLICKS)
        assert csv.at[metric, "dataset"] == "GrabCut"
        assert csv.at[metric, "value"] == pytest.approx(expected)
        assert csv.at[metric, "published"] == published["value"].item()
        assert csv.at[metric, "difference"] == pytest.approx(expected - published["value"].item())
        assert "RITM README" in csv.at[metric, "published_source"]
    rows = html_rows(out.html.read_text(), "table2-noc")
    assert [kind for kind, _ in rows] == ["measured", "published", "difference"]
    published_cells = rows[1][1][1:]
    assert [c[0] for c in published_cells] == ["1.54", "1.68"]  # RITM README, HRNet18s IT-M
    assert all("RITM README" in c[2] for c in published_cells)


def test_medical_table_reports_miou_at_10_from_the_trajectories(runs, tmp_path):
    medical = tmp_path / "medical"
    shutil.copytree(runs["reveal"], medical)
    manifest = json.loads((medical / "manifest.json").read_text())
    manifest["datasets"]["demo"]["folder"] = "ssTEM"  # the same numbers, filed as medical
    (medical / "manifest.json").write_text(json.dumps(manifest))
    out = build_report([runs["grabcut"], medical], tmp_path / "r.html")
    table = out.tables["medical"]
    assert list(table.display.columns.get_level_values(0).unique()) == ["ssTEM (demo)"]
    assert [r.label for r in table.rows] == [
        "shifted_reveal.py:make_predictor"
    ]  # no GrabCut-OpenCV
    traj = read_trajectories(medical)
    expected = 100 * traj[traj["click"] == 10]["iou"].to_numpy(np.float32).mean(dtype=np.float32)
    assert table.display.iat[0, 0] == f"{expected:.2f}"
    assert table.display.iat[0, 1] == "–"  # 10-click runs have no mIoU@20
    assert "demo" not in table.display.columns.get_level_values(0)
    assert "ssTEM (demo)" not in out.tables["noc"].display.columns.get_level_values(0)


def test_figures_are_embedded_and_qualitative_panels_rank_instances(runs, report):
    keys = [f.key for f in report.figures]
    assert keys[:4] == ["figure-miou", "figure-mbiou", "figure4-k1", "figure4-k5"]
    assert sum(k.startswith("figure7-") for k in keys) == 2  # one per method on demo
    html = report.html.read_text()
    assert html.count('src="data:image/png;base64,') == len(report.figures)
    assert "http://" not in html and "https://" not in html
    for fig in report.figures:
        image = cv2.imdecode(np.frombuffer(fig.png, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[0] > 100 and image.std() > 5
    traj = read_trajectories(runs["grabcut"])
    picks = pick_instances(traj, MAX_CLICKS)
    assert [p.rank for p in picks] == ["best", "worst"]  # two instances: median is one of them
    assert picks[0].noc90 <= picks[-1].noc90
    for pick in picks:
        ious = traj[traj["sample_id"] == pick.sample_id].sort_values("click")["iou"]
        assert pick.iou == pytest.approx(float(ious.iloc[pick.click - 1]))
    assert "Figure 1" in html and "profile.csv" in html  # no GFLOPs: said, not drawn


def test_qualitative_panels_are_skipped_with_a_note_without_data(runs, tmp_path, monkeypatch):
    monkeypatch.delenv("BENCH_DATA_ROOT", raising=False)
    moved = tmp_path / "moved"
    shutil.copytree(runs["reveal_grabcut"], moved)
    manifest = json.loads((moved / "manifest.json").read_text())
    manifest["datasets"]["grabcut"]["root"] = str(tmp_path / "gone" / "GrabCut")
    (moved / "manifest.json").write_text(json.dumps(manifest))
    out = build_report([moved, runs["reveal_thr"]], tmp_path / "r.html")
    assert not [f for f in out.figures if f.key.startswith("figure7-")]
    assert any("dataset not available" in n for n in out.notes)
    assert any("no saved masks" in n for n in out.notes)
    html = out.html.read_text()
    assert "dataset not available" in html and "--save-masks" in html


@pytest.mark.slow
def test_compute_table_and_bubble_chart_from_profile_csv(runs, tmp_path):
    from bench.cli.profile import profile_command

    run = tmp_path / "profiled"
    shutil.copytree(runs["reveal_grabcut"], run)
    # A profile is shown only beside runs of the model it measured: this run stands for one.
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["model"]["name"] = "ritm-hrnet18s"
    (run / "manifest.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(
        profile_command,
        ["--models", "ritm-hrnet18s", "--device", "meta", "--no-spc", "--out", str(run)],
    )
    assert result.exit_code == 0, result.output
    profile = pd.read_csv(run / "profile.csv").iloc[0]
    out = build_report([run, runs["reveal_grabcut"]], tmp_path / "r.html")
    table = out.tables["compute"]
    cells = table.display.iloc[0]
    assert cells.iloc[0] == str(profile["input_size"])
    assert cells.iloc[3] == f"{profile['params_thop_M']:.2f}"
    assert cells.iloc[5] == f"{profile['gflops_paper']:.2f}"
    assert cells.iloc[6] == f"{profile['gflops_full']:.2f}"
    published = table.display.iloc[1]  # SimpleClick Table 5: HRNet-18s, 4.22 M, 17.94 GFLOPs
    assert (published.iloc[3], published.iloc[5]) == ("4.22", "17.94")
    assert any(profile["flops_convention_paper"] in n for n in table.notes)
    assert any("No profile.csv" in n for n in table.notes)
    assert "figure1" in [f.key for f in out.figures]
    csv = pd.read_csv(out.files["table5-compute"]["csv"])
    assert csv["gflops_paper"].iloc[0] == pytest.approx(profile["gflops_paper"])


def test_cli_writes_report_and_tables_and_rejects_bad_clicks(runs, tmp_path):
    out = tmp_path / "cli" / "paper.html"
    result = CliRunner().invoke(
        report_command, [str(runs["grabcut"]), str(runs["reveal"]), "-o", str(out), "--k", "2"]
    )
    assert result.exit_code == 0, result.output
    for name in ("paper.html", "paper-table2-noc.csv", "paper-table2-noc.tex"):
        assert (tmp_path / "cli" / name).is_file()
    assert "IoU@2 histograms" in out.read_text()
    bad = CliRunner().invoke(report_command, [str(runs["grabcut"]), "-o", str(out), "--k", "0,11"])
    assert bad.exit_code == 2 and "1..10" in bad.output
    not_a_run = CliRunner().invoke(report_command, [str(tmp_path), "-o", str(out)])
    assert not_a_run.exit_code == 2 and "manifest.json" in not_a_run.output


def test_reference_table_rows_have_sources_and_resolve_to_registered_names():
    from bench.adapters import all_models
    from bench.datasets import DATASETS

    ref = reference_table()
    assert ref["source"].str.len().gt(10).all()
    assert ref["value"].notna().all() and ref["value"].gt(0).all()
    noc = ref[ref["table"] == "NoC"]
    folders = {spec.folder for spec in DATASETS.values()}
    assert set(noc["dataset"]) <= folders  # lookups use the manifests' official names
    assert set(noc["metric"]) <= {"NoC@85", "NoC@90", "NoC@95"}  # NoC@95: CFR-ICL, SegNext
    assert noc["reference"].str.fullmatch(r"[a-z0-9-]+/(cocolvis|sbd|pascalvoc)").all()
    # One row per key and source (RITM README rows have no paper table).
    assert not noc.duplicated(["reference", "paper_table", "dataset", "metric"]).any()
    compute = ref[ref["table"] == "compute"]
    # Keyed by our architecture name, or by the backbone for Table 5's other backbones.
    others = compute[~compute["reference"].isin(set(all_models()))]
    assert (others["reference"] == others["backbone"].str.lower()).all()
    assert {"simpleclick-vit-b", "ritm-hrnet18s"} <= set(compute["reference"])
    assert compute.loc[compute["metric"] == "gflops", "input_size"].notna().all()


def test_a_run_still_in_progress_is_read_from_its_journal_and_flagged(runs, tmp_path):
    running = tmp_path / "running"
    shutil.copytree(runs["reveal"], running)
    (running / "trajectories.parquet").unlink()  # as before `bench run` finalizes
    manifest = json.loads((running / "manifest.json").read_text())
    manifest["status"] = "running"
    (running / "manifest.json").write_text(json.dumps(manifest))
    out = build_report([runs["reveal"], running], tmp_path / "r.html")
    csv = pd.read_csv(out.files["table2-noc"]["csv"])
    finished, in_progress = (
        csv[csv["method"].str.endswith(f"({n})")] for n in ("reveal", "running")
    )
    assert in_progress["value"].tolist() == finished["value"].tolist()  # same journal content
    assert in_progress["flags"].str.contains("'running'").all()
    assert "run status is &#39;running&#39;" in out.html.read_text()
