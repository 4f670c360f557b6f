"""`bench report RUN_DIR... -o report.html`: the paper's tables and figures for stored runs."""

from __future__ import annotations

from pathlib import Path

import click


def _parse_clicks(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: expected comma-separated click numbers, e.g. 1,5"
        ) from None
    if not values:
        raise click.BadParameter("give at least one click number")
    return values


@click.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
# RUN_DIRS: run folders, folders of runs (`runs/`), and `bench profile --out` folders.
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="HTML file; the tables are written next to it as <name>-tableN-*.csv / .tex.",
)
@click.option(
    "--k",
    "hist_clicks",
    default=None,
    help="Clicks whose IoU distribution Figure 4 shows (comma-separated; default: 1,5, or 1 "
    "and the runs' last click when they have fewer than 5).",
)
@click.option(
    "--data-root",
    type=click.Path(path_type=Path),
    envvar="BENCH_DATA_ROOT",
    help="Dataset folder for the qualitative panels (default: the root each run recorded).",
)
@click.option("--title", default="Interactive segmentation benchmark report", show_default=True)
@click.option(
    "--published",
    default="none",
    show_default=True,
    help="The paper's other methods as published-only rows of Tables 2/3 and points in "
    "Figure 1: none, all, or comma-separated keys (simpleclick-vit-h/sbd) or architectures.",
)
@click.option(
    "--metrics",
    "metric_text",
    default=None,
    help="Columns of Tables 2/3 (comma-separated registry names), e.g. "
    "NoC@85,NoC@90,NoC@95,NoF@95,mIoU@5,mBIoU@5,IoU-AUC. Default: NoC@85/90 in Table 2, "
    "mIoU@10/20 in Table 3.",
)
def report_command(
    run_dirs: tuple[Path, ...],
    output: Path,
    hist_clicks: str | None,
    data_root: Path | None,
    title: str,
    published: str,
    metric_text: str | None,
) -> None:
    """Render one self-contained HTML report from the RUN_DIRs written by `bench run`.

    A folder of runs (`runs/`) stands for the runs inside it; entries that are not runs are
    left out with a note. A `bench profile --out` folder adds its rows to the runs of the
    models it profiled."""
    from bench.metrics import MetricError, parse_metrics
    from bench.reports.build import build_report
    from bench.reports.runs import RunFolderError

    metric_names = None
    if metric_text is not None:
        try:
            metric_names = [m.name for m in parse_metrics(metric_text)]
        except MetricError as exc:
            raise click.BadParameter(str(exc), param_hint="--metrics") from None

    try:
        result = build_report(
            run_dirs,
            output,
            None if hist_clicks is None else _parse_clicks(hist_clicks),
            data_root=data_root,
            title=title,
            published=[p for p in published.split(",") if p.strip()],
            metric_names=metric_names,
        )
    except (RunFolderError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"wrote {result.html}")
    for files in result.files.values():
        for path in files.values():
            click.echo(f"wrote {path}")
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
