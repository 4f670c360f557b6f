"""`bench run`: evaluate a model on datasets with the official protocol (resumable)."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

import click

from bench.cli.checks import IOU_TARGET, PROBABILITY_THRESHOLD
from bench.cli.model_options import data_root_option, factory_options, model_options
from bench.cli.summary import print_summary


def default_out(model: str) -> Path:
    """`runs/<model>`: a registered name as it is; `path/to/x.py:make` -> `runs/x_make`,
    `pkg.mod:make` -> `runs/pkg.mod_make` (never a hidden or nested folder)."""
    source, sep, attr = model.rpartition(":")
    if sep:
        stem = Path(source).stem if source.endswith(".py") else Path(source).name
        name = f"{stem}_{attr}"
    else:
        name = Path(model).name
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip("._-")
    return Path("runs") / (name or "model")


@click.command("run")
@click.option(
    "--model", "model", required=True, help="Registered name, pkg.mod:factory or file.py:factory."
)
@click.option(
    "--datasets",
    "datasets",
    default="demo",
    show_default=True,
    help="Comma-separated: registered names, folder:PATH[,k=v], coco:JSON[,images=DIR], "
    "pkg.mod:function or file.py:function.",
)
@data_root_option
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Run directory (default runs/<model>; a plugin x.py:make gives runs/x_make).",
)
@model_options
@click.option(
    "--reference", help="Published row to compare with in reports, e.g. simpleclick-vit-b/cocolvis."
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help="Evaluate only the first N (at least 1) entries of each dataset.",
)
@click.option("--max-clicks", type=click.IntRange(min=1), default=20, show_default=True)
@click.option(
    "--pred-thr",
    type=PROBABILITY_THRESHOLD,
    default=0.49,
    show_default=True,
    help="A pixel is object when its probability is > this value, in [0, 1).",
)
@click.option(
    "--stop-at-iou",
    type=IOU_TARGET,
    help="Official early stop at this IoU, in (0, 1] (default: never).",
)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch and OpenCV.")
@click.option("--save-masks", is_flag=True, help="Store predicted masks (compressed) for reports.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Instances in flight, their network calls batched (models with predict_batch).",
)
@click.option(
    "--harness-threads",
    type=click.IntRange(min=1),
    help="Threads for the per-instance click rule and scoring of a batch "
    "(default: min(batch size, CPUs, 8)).",
)
@click.option(
    "--pipeline/--no-pipeline",
    default=None,
    help="Overlap one cohort's network call with another's scoring, 2 x batch size in flight "
    "(default: on with --device cuda).",
)
@click.option(
    "--shard",
    metavar="I/N",
    help="Evaluate only slice I (0-based) of N of every dataset; merge with bench merge.",
)
@click.option(
    "--click-model",
    default="official",
    show_default=True,
    metavar="NAME[:ARG,K=V,...]",
    help="Simulated user: official, jitter:sigma=5, random-in-error, border-distance:d=5, "
    "first-click-random, replay:clicks.jsonl.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of random click models.")
@click.option("--overwrite", is_flag=True, help="Delete an existing run directory first.")
@click.option(
    "--traceback",
    is_flag=True,
    help="Print and keep (in manifest.json) the traceback of each instance the model fails on.",
)
@click.option("--no-progress", is_flag=True)
def run_command(**kw: Any) -> None:
    """Evaluate a model on datasets with the official protocol; resumes an interrupted run.

    Under torchrun (`torchrun --nproc-per-node N -m bench run ...`) each process evaluates
    one shard into OUT/shards/ and rank 0 merges them into OUT.
    """
    from bench.clicks import parse_click_model
    from bench.datasets import split_dataset_specs
    from bench.engine import distributed
    from bench.engine.instance import ProtocolSettings
    from bench.engine.run import RunMismatchError, RunRequest, run
    from bench.engine.shards import parse_shard
    from bench.sample import GroundTruthHiddenError
    from bench.stats import summarize_run
    from bench.store import RunLockedError

    options = factory_options(kw)
    try:
        shard = parse_shard(kw["shard"]) if kw["shard"] else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--shard") from None
    try:
        parse_click_model(kw["click_model"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--click-model") from None
    try:
        dataset_specs = split_dataset_specs(kw["datasets"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--datasets") from None
    if not dataset_specs:
        raise click.BadParameter("give at least one dataset name", param_hint="--datasets")
    out = kw["out"] or default_out(kw["model"])
    ranks = distributed.world() if shard is None else None
    if kw["overwrite"]:
        _remove_run(out, ranks)
    request = RunRequest(
        model=kw["model"],
        datasets=dataset_specs,
        out=out,
        model_options=options,
        data_root=kw["data_root"],
        settings=ProtocolSettings(
            max_clicks=kw["max_clicks"],
            pred_thr=kw["pred_thr"],
            stop_at_iou=kw["stop_at_iou"],
            click_model=kw["click_model"],
            seed=kw["seed"],
        ),
        limit=kw["limit"],
        threads=kw["threads"],
        save_masks=kw["save_masks"],
        reference=kw["reference"],
        command=tuple(sys.argv),
        progress=not kw["no_progress"],
        batch_size=kw["batch_size"],
        shard=shard,
        harness_threads=kw["harness_threads"],
        pipeline=kw["pipeline"],
        traceback=kw["traceback"],
    )
    try:
        manifest = run(request)
    except KeyboardInterrupt:
        click.echo(
            f"interrupted; {out} keeps every finished entry: run the same command to resume",
            err=True,
        )
        sys.exit(130)
    except (
        GroundTruthHiddenError,
        KeyError,
        FileNotFoundError,
        RunMismatchError,
        RunLockedError,
        ValueError,
        TypeError,
    ) as exc:
        raise click.ClickException(str(exc.args[0] if isinstance(exc, KeyError) else exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot write the run directory {out}: {exc}") from exc
    except Exception as exc:
        if type(exc).__name__ == "CheckpointError":  # no torch import just to name the class
            raise click.ClickException(str(exc)) from exc
        raise
    if ranks is not None and ranks[0] != 0:
        return  # rank 0 prints the merged run
    from bench.store import read_trajectories

    print_summary(summarize_run(read_trajectories(out), manifest), manifest)
    click.echo(f"run directory: {out}")
    errors = manifest.get("errors") or []
    if not kw["traceback"] and any(": model " in str(e.get("problem")) for e in errors):
        click.echo("(bench run --traceback prints and keeps where the model failed)", err=True)
    if manifest.get("status") == "failed":
        n_errors = len(manifest.get("errors", []))
        click.echo(
            f"run failed: none of the {n_errors} evaluated sample(s) gave a result (errors "
            "above and in manifest.json)"
            if n_errors
            else "run failed: no instance was evaluated (the datasets listed no entries)",
            err=True,
        )
        sys.exit(1)


def _remove_run(out: Path, ranks: tuple[int, int, int] | None) -> None:
    """--overwrite; under torchrun each rank removes its own shard and rank 0 the merge, so
    no rank deletes a folder another one is already writing."""
    from bench.engine.distributed import shard_dir
    from bench.engine.shards import Shard

    if ranks is None:
        if out.exists():
            shutil.rmtree(out)
        return
    rank, size, _ = ranks
    own = shard_dir(out, Shard(rank, size))
    if own.exists():
        shutil.rmtree(own)
    if rank == 0 and out.exists():
        for child in out.iterdir():
            if child.name != "shards":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
