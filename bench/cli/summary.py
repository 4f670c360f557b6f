"""`bench summary RUN_DIR`: the per-dataset metrics of one run, printed and written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def print_summary(table: Any, manifest: dict[str, Any]) -> None:
    columns = [c for c in ("instances", "NoC@85", "NoC@90", "NoF@85", "NoF@90") if c in table]
    columns += [c for c in ("mIoU@1", "mIoU@5", "mIoU@10", "mIoU@20") if c in table]
    columns += [c for c in ("SPC_model_s", "SPC_harness_s") if c in table]
    if table.empty:
        click.echo("no instance was evaluated")
    else:
        click.echo(table[columns].to_string(float_format=lambda v: f"{v:.4f}"))
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
    """Per-dataset NoC@85/90, NoF@85/90 and mIoU@k of a run; writes summary.csv."""
    from bench.metrics import summarize
    from bench.store import SUMMARY, read_trajectories

    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    max_clicks = manifest.get("protocol", {}).get("max_clicks", 20)
    table = summarize(read_trajectories(run_dir), max_clicks, nof_rule=nof_rule)
    table.to_csv(run_dir / SUMMARY)
    print_summary(table, manifest)
    click.echo(f"wrote {run_dir / SUMMARY}")
