"""`bench summary RUN_DIR`: the per-dataset metrics of one run, printed and written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def _cells(table: Any, column: str) -> list[str]:
    """`value [lo, hi]` per dataset; the bare value where the table has no CI for the column
    (or NaN bounds: a single instance)."""
    if column.startswith("NoF@"):
        fmt = lambda v: str(round(v))  # noqa: E731
    else:
        fmt = lambda v: f"{v:.2f}" if column.startswith("NoC@") else f"{v:.3f}"  # noqa: E731
    lo, hi = f"{column}_lo", f"{column}_hi"
    has_ci = lo in table and hi in table
    return [
        fmt(row[column])
        + (f" [{fmt(row[lo])}, {fmt(row[hi])}]" if has_ci and row[lo] == row[lo] else "")
        for _, row in table.iterrows()
    ]


def print_summary(table: Any, manifest: dict[str, Any]) -> None:
    """The run's table on the console; CI bounds (`<metric>_lo`/`_hi`, from
    `bench.stats.summarize_with_intervals`) are shown as `value [lo, hi]` when present."""
    import pandas as pd

    columns = [c for c in ("NoC@85", "NoC@90", "NoF@85", "NoF@90") if c in table]
    columns += [c for c in ("mIoU@1", "mIoU@5", "mIoU@10", "mIoU@20") if c in table]
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
def summary_command(run_dir: Path, nof_rule: str) -> None:
    """Per-dataset NoC@85/90, NoF@85/90 and mIoU@k of a run, each with its 95% bootstrap
    confidence interval; writes summary.csv (the bounds in `<metric>_lo` / `<metric>_hi`)."""
    from bench.stats import summarize_with_intervals
    from bench.store import SUMMARY, read_trajectories

    manifest_path = run_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        trajectories = read_trajectories(run_dir)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{manifest_path}: not valid JSON ({exc})") from None
    except (FileNotFoundError, ValueError) as exc:  # no run here, or a corrupt journal line
        raise click.ClickException(str(exc)) from None
    max_clicks = manifest.get("protocol", {}).get("max_clicks", 20)
    table = summarize_with_intervals(trajectories, max_clicks, nof_rule=nof_rule)
    table.to_csv(run_dir / SUMMARY)
    print_summary(table, manifest)
    status = manifest.get("status")
    if status is not None and not str(status).startswith("complete"):
        click.echo(
            f"note: run status is {status!r}: these numbers cover its finished entries only",
            err=True,
        )
    click.echo(f"wrote {run_dir / SUMMARY}")
