"""`bench report`: run folders in, one self-contained HTML page (figures inlined as PNG data
URIs, no external resources) plus each table as CSV and LaTeX next to it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import jinja2

from bench.reports import figures as figs
from bench.reports.compare import Flags, find_flags, for_display
from bench.reports.export import html_view, write_table
from bench.reports.qualitative import qualitative_figures
from bench.reports.rclicks import split_dirs
from bench.reports.runs import Run, RunFolderError, collect_inputs, load_runs, unmatched_profiles
from bench.reports.tables import (
    ReportTable,
    compute_table,
    is_medical,
    medical_table,
    noc_table,
    ordered_datasets,
    per_instance_runs,
    robustness_table,
    summarize_runs,
)

DEFAULT_HIST_CLICKS = (1, 5)


@dataclass(frozen=True)
class ReportOutput:
    html: Path
    tables: dict[str, ReportTable]
    files: dict[str, dict[str, Path]]  # table key -> {"csv": path, "tex": path}
    figures: list[figs.FigureImage]
    notes: list[str] = field(default_factory=list)


def _package_version() -> str:
    try:
        return version("iseg-bench")
    except PackageNotFoundError:
        return "unknown"


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("bench.reports", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _run_view(run: Run) -> dict[str, Any]:
    manifest = run.manifest
    traj = run.trajectories
    counts = traj.groupby("dataset", sort=False)["sample_id"].nunique()
    datasets = ", ".join(f"{run.dataset_label(name)} ({n})" for name, n in counts.items())
    fingerprints = ", ".join(
        f"{info.get('folder', name)}: {str(info.get('fingerprint') or '–')[:12]}"
        for name, info in (manifest.get("datasets") or {}).items()
    )
    sha = run.model.get("checkpoint_sha256")
    return {
        "label": run.label,
        "path": str(run.path),
        "model": run.model_name,
        "reference": run.reference,
        "status": manifest.get("status", "unknown"),
        "created": manifest.get("created", "–"),
        "datasets": datasets,
        "versions": ", ".join(f"{k} {v}" for k, v in (manifest.get("versions") or {}).items()),
        "checkpoint_sha": sha[:16] if sha else "–",
        "fingerprints": fingerprints,
        "errors": len(manifest.get("errors") or []),
        "manifest_json": json.dumps(manifest, indent=2, sort_keys=True, default=str),
    }


def _warnings(flags: Flags, runs: list[Run]) -> list[str]:
    out = [f"{label}: {p}" for label, problems in flags.runs.items() for p in problems]
    out += [f"{folder}: {p}" for folder, problems in flags.datasets.items() for p in problems]
    for run in runs:
        traj = run.trajectories
        if "biou" not in traj or traj["biou"].isna().all():
            out.append(
                f"{run.label}: no boundary IoU stored (a run made before the biou column): "
                "mBIoU unavailable; `bench rescore RUN` fills it in from --save-masks masks."
            )
        errors = run.manifest.get("errors") or []
        if errors:
            out.append(
                f"{run.label}: {len(errors)} sample(s) could not be evaluated (see manifest)."
            )
    return out


def _rclicks_section(folders: list[Path]) -> dict[str, Any]:
    """The RClicks part of the robustness section (`bench robustness` folders); {} if none."""
    if not folders:
        return {}
    from bench.reports import rclicks

    sets = rclicks.load_sets(folders)
    ranking = rclicks.ranking_changes(sets)
    return {
        "deltas": rclicks.delta_table(sets),
        "ranking": ranking,
        "curves": rclicks.fig6_curves(sets),
        "changed": rclicks.flagged_pairs(ranking),
        "methods": [s.label for s in sets],
    }


def default_hist_clicks(max_k: int) -> tuple[int, ...]:
    """Clicks 1 and 5, or 1 and the runs' last click when they stop earlier."""
    return tuple(sorted({1, min(DEFAULT_HIST_CLICKS[-1], max_k)}))


def build_report(
    run_dirs: Sequence[Path | str],
    output: Path | str,
    hist_clicks: Sequence[int] | None = None,
    data_root: Path | str | None = None,
    title: str = "Interactive segmentation benchmark report",
    published: Sequence[str] | str | None = None,
    metric_names: Sequence[str] | None = None,
) -> ReportOutput:
    """`run_dirs`: run folders, folders of runs (`runs/`) and `bench profile --out` folders
    (`bench.reports.runs.collect_inputs`). `hist_clicks`: the clicks of Figure 4 (default
    `default_hist_clicks`). `published`: the paper's other methods to add as published-only
    rows of Tables 2/3 and as points in Figure 1 (`all`, reference keys or architectures;
    default none). `metric_names`: the columns of Tables 2/3 (registry names; default
    NoC@85/90 and mIoU@10/20)."""
    output = Path(output)
    inputs = collect_inputs(list(run_dirs))
    if not inputs.runs:
        given = ", ".join(str(d) for d in run_dirs) or "nothing"
        raise RunFolderError(
            f"no run folder (a folder with manifest.json written by `bench run`) in {given}"
            + "".join(f"\n  {s}" for s in inputs.skipped)
        )
    plain_dirs, robustness_dirs = split_dirs(inputs.runs)  # a robustness folder: its base run
    runs = load_runs(plain_dirs, inputs.profiles)
    input_notes = inputs.skipped + unmatched_profiles(runs, inputs.profiles)
    max_k = min(run.max_clicks for run in runs)
    if hist_clicks is None:
        hist_clicks = default_hist_clicks(max_k)
    bad = [k for k in hist_clicks if not 1 <= k <= max_k]
    if bad:
        raise ValueError(f"--k {bad}: clicks must lie in 1..{max_k} (the runs' click limit)")
    flags = find_flags(runs)
    extra = tuple(metric_names or ())
    summaries = summarize_runs(runs, extra)
    per_instance = per_instance_runs(runs, extra)

    tables = {
        "noc": noc_table(runs, summaries, flags, per_instance, published, metric_names),
        "medical": medical_table(runs, summaries, flags, per_instance, published, metric_names),
        "compute": compute_table(runs),
        "robustness": robustness_table(runs, summaries, flags, per_instance),
    }
    rclicks = _rclicks_section(robustness_dirs)
    if rclicks:
        tables["rclicks_deltas"] = rclicks["deltas"]
        tables["rclicks_ranking"] = rclicks["ranking"]
    natural = ordered_datasets(summaries, lambda d: not is_medical(d))
    every = ordered_datasets(summaries, lambda d: True)
    folder_of = {(r.label, name): r.dataset_label(name) for r in runs for name in r.datasets()}
    qualitative, qualitative_notes = qualitative_figures(
        runs, Path(data_root) if data_root is not None else None
    )
    figures = {
        "bubble": figs.noc_vs_gflops(runs, summaries, natural, published),
        "curves": figs.miou_curves(runs, summaries, every),
        "boundary_curves": figs.miou_curves(runs, summaries, every, prefix="mBIoU"),
        "histograms": [
            f
            for k in hist_clicks
            if (f := figs.iou_histograms(runs, every, int(k), folder_of)) is not None
        ],
        "qualitative": qualitative,
    }

    output.parent.mkdir(parents=True, exist_ok=True)
    stem = output.with_suffix("")
    files = {t.key: write_table(t, stem) for t in tables.values() if not t.empty}
    table_views = {}
    for name, table in tables.items():
        view = html_view(table)
        view["files"] = {kind: p.name for kind, p in files.get(table.key, {}).items()}
        table_views[name] = view

    html = (
        _environment()
        .get_template("report.html.j2")
        .render(
            title=title,
            version=_package_version(),
            generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            runs=[_run_view(r) for r in runs],
            protocol=json.dumps(for_display(flags.protocol), sort_keys=True),
            click_models=sorted({r.click_model for r in runs}),
            warnings=input_notes + _warnings(flags, runs),
            tables=table_views,
            figures=figures,
            qualitative_notes=qualitative_notes,
            rclicks=rclicks,
        )
    )
    output.write_text(html, encoding="utf-8")
    all_figures = [
        f
        for f in (figures["bubble"], figures["curves"], figures["boundary_curves"])
        if f is not None
    ]
    all_figures += figures["histograms"] + figures["qualitative"]
    if rclicks and rclicks["curves"] is not None:
        all_figures.append(rclicks["curves"])
    return ReportOutput(output, tables, files, all_figures, input_notes + qualitative_notes)
