"""`bench rescore RUN_DIR`: boundary IoU and object sizes for a run made before they were
stored, from its saved masks (`bench.metrics.rescore`)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("rescore")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--data-root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Where the datasets live (default: the root the run recorded, then the usual one).",
)
def rescore_command(run_dir: Path, data_root: Path | None) -> None:
    """Fill in the `biou` (boundary IoU per click) and `gt_area` columns of RUN_DIR from the
    masks saved by `bench run --save-masks` and the datasets' ground truth; no model runs."""
    from bench.metrics.rescore import rescore
    from bench.store import MANIFEST, RunLockedError

    if not (run_dir / MANIFEST).is_file():
        raise click.ClickException(f"{run_dir}: no {MANIFEST} (not a `bench run` output folder)")
    try:
        result = rescore(run_dir, data_root)
    except RunLockedError as exc:
        raise click.ClickException(str(exc)) from None
    except (FileNotFoundError, ValueError, KeyError) as exc:
        raise click.ClickException(f"{run_dir}: {exc}") from None
    click.echo(f"boundary IoU filled in for {result.filled} instance(s) of {run_dir}")
    if result.missing_masks:
        click.echo(
            f"{len(result.missing_masks)} instance(s) have no saved masks (run with "
            "--save-masks to measure them): "
            + ", ".join(result.missing_masks[:5])
            + (" ..." if len(result.missing_masks) > 5 else ""),
            err=True,
        )
    if result.missing_samples:
        click.echo(
            f"{len(result.missing_samples)} instance(s) are no longer in their dataset: "
            + ", ".join(result.missing_samples[:5]),
            err=True,
        )
