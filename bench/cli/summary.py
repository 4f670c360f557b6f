"""`bench summary RUN_DIR`: the per-dataset metrics of one run, printed and written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

DEFAULT_SHOWN = (
    "NoC@85",
    "NoC@90",
    "NoC@95",
    "NoF@85",
    "NoF@90",
    "NoF@95",
    "mIoU@1",
    "mIoU@5",
    "mIoU@10",
    "mIoU@20",
    "mBIoU@5",
    "IoU-AUC",
)
"""What the console shows by default (summary.csv holds every metric of the default set)."""


def _cells(table: Any, column: str) -> list[str]:
    """`value [lo, hi]` per dataset; the bare value where the table has no CI for the column
    (or NaN bounds: a single instance); `unavailable` where the run cannot measure it."""
    from bench.metrics import get_metric

    metric = get_metric(column)
    lo, hi = f"{column}_lo", f"{column}_hi"
    has_ci = lo in table and hi in table
    cells = []
    for _, row in table.iterrows():
        value = row[column]
        text = metric.format(None if value != value else float(value))
        if value == value and has_ci and row[lo] == row[lo]:
            text += f" [{metric.format(float(row[lo]))}, {metric.format(float(row[hi]))}]"
        cells.append(text)
    return cells


def unavailable_notes(table: Any, columns: list[str], manifest: dict[str, Any]) -> list[str]:
    """Why a metric has no value: above the early stop, or boundary IoU not stored."""
    from bench.metrics import get_metric

    stop = (manifest.get("protocol") or {}).get("stop_at_iou")
    notes = []
    for column in columns:
        if column not in table or not table[column].isna().any():
            continue
        metric = get_metric(column)
        if metric.group in ("noc", "nof", "auc") and stop is not None:
            notes.append(
                f"{column}: unavailable, the run stopped each instance at IoU {stop} "
                "(--stop-at-iou)"
            )
        elif metric.requires == "biou":
            notes.append(
                f"{column}: unavailable, this run has no boundary IoU (made before `biou`); "
                "`bench rescore RUN` fills it in from masks saved with --save-masks"
            )
        else:
            notes.append(f"{column}: unavailable for some dataset (trajectories too short)")
    return notes


def print_summary(table: Any, manifest: dict[str, Any], columns: list[str] | None = None) -> None:
    """The run's table on the console; CI bounds (`<metric>_lo`/`_hi`, from
    `bench.stats.summarize_with_intervals`) are shown as `value [lo, hi]` when present."""
    import pandas as pd

    if columns is None:
        columns = [c for c in DEFAULT_SHOWN if c in table]
    if table.empty:
        click.echo("no instance was evaluated")
    else:
        shown = pd.DataFrame(index=table.index)
        if "instances" in table:
            shown["instances"] = table["instances"].astype(int)
        for column in columns:
            shown[column] = _cells(table, column)
        for column in ("SPC_model_s", "SPC_harness_s"):
            if column in table:
                shown[column] = [f"{v:.4f}" for v in table[column]]
        click.echo(shown.to_string())
        if any(f"{c}_lo" in table for c in columns):
            from bench.stats import CI_METHOD

            click.echo(f"[lo, hi]: {CI_METHOD}.")
        for note in unavailable_notes(table, columns, manifest):
            click.echo(f"note: {note}")
    skipped = manifest.get("errors", [])
    if skipped:
        click.echo(f"{len(skipped)} sample(s) skipped because of errors (listed in manifest.json):")
        for err in skipped:
            click.echo(f"  {err['dataset']}/{err['sample_id']}: {err['path']}: {err['problem']}")


@click.command("summary")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--nof-rule",
    type=click.Choice(["official", "never-reached"]),
    default="official",
    show_default=True,
    help="official: NoC == max clicks (a hit at the last click counts as a failure); "
    "never-reached: the threshold is never reached.",
)
@click.option(
    "--metrics",
    "metric_text",
    default=None,
    help="Metrics to show (comma-separated), e.g. NoC@85,NoC@95,NoF@95,mIoU@5,mBIoU@5,IoU-AUC; "
    "any NoC@<percent>, NoF@<percent>, mIoU@<k>, mBIoU@<k>. Default: NoC and NoF at 85/90/95, "
    "mIoU@1/5/10/20, mBIoU@5, IoU-AUC.",
)
@click.option(
    "--by",
    "by",
    type=click.Choice(["dataset", "size"]),
    default="dataset",
    show_default=True,
    help="size: a row per dataset and COCO object-size bucket (GT pixels < 32², 32²-96², "
    "> 96²); writes summary-by-size.csv.",
)
def summary_command(run_dir: Path, nof_rule: str, metric_text: str | None, by: str) -> None:
    """Per-dataset NoC, NoF, mIoU@k, mBIoU@k and IoU-AUC of a run, each with its 95% bootstrap
    confidence interval; writes summary.csv (every metric of the default set and of --metrics,
    the bounds in `<metric>_lo` / `<metric>_hi`)."""
    from bench.metrics import MetricError, parse_metrics
    from bench.stats import summarize_run
    from bench.store import SUMMARY, read_trajectories

    columns = None
    if metric_text is not None:
        try:
            columns = [m.name for m in parse_metrics(metric_text)]
        except MetricError as exc:
            raise click.BadParameter(str(exc), param_hint="--metrics") from None
    manifest_path = run_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        trajectories = read_trajectories(run_dir)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{manifest_path}: not valid JSON ({exc})") from None
    except (FileNotFoundError, ValueError) as exc:  # no run here, or a corrupt journal line
        raise click.ClickException(str(exc)) from None
    try:
        table = summarize_run(
            trajectories, manifest, nof_rule=nof_rule, extra=columns or (), by_size=by == "size"
        )
    except MetricError as exc:
        raise click.ClickException(f"{run_dir}: {exc}") from None
    path = run_dir / (SUMMARY if by == "dataset" else "summary-by-size.csv")
    table.to_csv(path)
    print_summary(table, manifest, columns)
    status = manifest.get("status")
    if status is not None and not str(status).startswith("complete"):
        click.echo(
            f"note: run status is {status!r}: these numbers cover its finished entries only",
            err=True,
        )
    click.echo(f"wrote {path}")
