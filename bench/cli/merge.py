"""`bench merge SHARD_DIR... --out DIR`: one run directory from the shards of one run."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("merge")
@click.argument(
    "shard_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path)
)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
def merge_command(shard_dirs: tuple[Path, ...], out: Path) -> None:
    """Merge the N shard directories of one run (bench run --shard I/N) into OUT.

    Refuses shards of different runs (model, checkpoint, protocol, dataset listings or limit
    differ), unfinished shards, and a missing or duplicated shard, naming the folder.
    """
    from bench.cli.summary import print_summary
    from bench.stats import summarize_run
    from bench.store import read_trajectories
    from bench.store.merge import MergeError, merge_shards

    try:
        manifest = merge_shards(list(shard_dirs), out, command=tuple(sys.argv))
    except MergeError as exc:
        raise click.ClickException(str(exc)) from None
    print_summary(summarize_run(read_trajectories(out), manifest), manifest)
    click.echo(f"merged {len(shard_dirs)} shards into {out}")
