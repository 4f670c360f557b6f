"""`bench robustness`: RClicks' realistic-user benchmark of one model, as eleven ordinary runs.

OUT/base is the official clicker and OUT/G1 .. OUT/G10 the click model `rclicks:prior=P,
group=G`, each a resumable run folder made by `bench run`'s own engine (`bench.engine.run`,
so `--batch-size`, `--shard`, torchrun and resume work as there). OUT/robustness.json names the
runs, OUT/robustness.csv holds the statistics (`bench.robustness`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from bench.cli.run import _remove_run, run_command

_SHARED = (
    "model",
    "datasets",
    "data_root",
    "checkpoint",
    "device",
    "dtype",
    "trust_checkpoint",
    "model_options",
    "limit",
    "max_clicks",
    "pred_thr",
    "threads",
    "save_masks",
    "batch_size",
    "harness_threads",
    "pipeline",
    "shard",
    "overwrite",
    "no_progress",
)
"""`bench run` options that mean the same here (one definition: taken from `bench run`)."""


def _run_params() -> list[click.Parameter]:
    by_name = {p.name: p for p in run_command.params}
    return [by_name[name] for name in _SHARED]


@click.command(
    "robustness",
    params=[
        *_run_params(),
        click.Option(
            ["--out"],
            type=click.Path(path_type=Path),
            required=True,
            help="Folder of the eleven runs, robustness.json and robustness.csv.",
        ),
        click.Option(
            ["--prior"],
            default="dt",
            show_default=True,
            help="Clickability map: ud, dt, or pkg.mod:function / file.py:function "
            "(e.g. RClicks' trained model).",
        ),
        click.Option(
            ["--rclicks-seed"],
            type=int,
            default=42,
            show_default=True,
            help="RClicks' --seed: each instance's sampler is RandomState(seed).",
        ),
        click.Option(
            ["--base"],
            type=click.Path(path_type=Path),
            help="Folder of the base (official clicker) run; an existing `bench run` folder "
            "of the same model and datasets is reused as it is (default OUT/base).",
        ),
    ],
)
def robustness_command(**kw: Any) -> None:
    """Base run + ten RClicks click groups, then ΔSB, ΔGR, ΔHH and NSR per dataset."""
    from bench.cli.model_options import factory_options
    from bench.datasets import split_dataset_specs
    from bench.engine import distributed
    from bench.engine.instance import ProtocolSettings
    from bench.engine.run import RunMismatchError, RunRequest, run
    from bench.engine.shards import parse_shard
    from bench.robustness import plan_runs, write_plan, write_robustness
    from bench.store import RunLockedError
    from bench.store.merge import MergeError

    options = factory_options(kw)
    try:
        shard = parse_shard(kw["shard"]) if kw["shard"] else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--shard") from None
    try:
        dataset_specs = split_dataset_specs(kw["datasets"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--datasets") from None
    if not dataset_specs:
        raise click.BadParameter("give at least one dataset name", param_hint="--datasets")
    out: Path = kw["out"]
    try:
        runs = plan_runs(out, kw["prior"], kw["rclicks_seed"], kw["base"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--prior") from None
    ranks = distributed.world() if shard is None else None
    for label, (folder, click_model) in runs.items():
        target = folder if shard is None else distributed.shard_dir(folder, shard)
        if kw["overwrite"] and not (label == "base" and kw["base"] is not None):
            _remove_run(target, ranks)
        if shard is None and ranks is None:
            try:
                _merge_finished_shards(folder)
            except MergeError as exc:
                raise click.ClickException(str(exc)) from exc
        request = RunRequest(
            model=kw["model"],
            datasets=dataset_specs,
            out=target,
            model_options=options,
            data_root=kw["data_root"],
            settings=ProtocolSettings(
                max_clicks=kw["max_clicks"], pred_thr=kw["pred_thr"], click_model=click_model
            ),
            limit=kw["limit"],
            threads=kw["threads"],
            save_masks=kw["save_masks"],
            command=tuple(sys.argv),
            progress=not kw["no_progress"],
            batch_size=kw["batch_size"],
            shard=shard,
            harness_threads=kw["harness_threads"],
            pipeline=kw["pipeline"],
        )
        click.echo(f"[robustness] {label}: {click_model} -> {target}", err=True)
        try:
            run(request)
        except KeyboardInterrupt:
            click.echo(f"interrupted; run the same command to resume ({target})", err=True)
            sys.exit(130)
        except (KeyError, FileNotFoundError, RunMismatchError, RunLockedError, ValueError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) else exc
            raise click.ClickException(str(message)) from exc
    if shard is not None:
        click.echo(
            f"shard {shard.index}/{shard.count} of all {len(runs)} runs done; when every shard "
            "is, run the same command without --shard to merge them and write robustness.csv"
        )
        return
    if ranks is not None and ranks[0] != 0:
        return
    write_plan(out, runs, kw["prior"], kw["rclicks_seed"])
    try:
        table = write_robustness(out)
    except (MergeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    _print_table(table)
    click.echo(f"robustness: {out / 'robustness.csv'}")


def _merge_finished_shards(folder: Path) -> None:
    """Shards left by `--shard I/N` runs of this command become the run folder, once."""
    from bench.store import MANIFEST
    from bench.store.merge import merge_shards

    shards = sorted((folder / "shards").glob("shard-*-of-*"))
    if shards and not (folder / MANIFEST).exists():
        merge_shards(shards, folder, command=tuple(sys.argv))


def _print_table(table: Any) -> None:
    columns = [
        "instances",
        "NoC@90 Base",
        "NoC@90 Sample",
        "NoC@90 Sample STD",
        "NoC@90 ΔSB",
        "NoC@90 ΔGR",
        "NoC@90 ΔHH",
        "IoU-AUC Base",
        "IoU-AUC Sample",
        "IoU-AUC NSR",
    ]
    click.echo(table[[c for c in columns if c in table.columns]].to_string(float_format="%.4f"))
