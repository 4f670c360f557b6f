"""`bench run`: evaluate a model on datasets with the official protocol (resumable)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import click

from bench.cli.summary import print_summary
from bench.options import parse_pairs


def _split(values: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in values.split(",") if v.strip())


@click.command("run")
@click.option(
    "--model", "model", required=True, help="Registered name, pkg.mod:factory or file.py:factory."
)
@click.option(
    "--datasets", "datasets", default="demo", show_default=True, help="Comma-separated names."
)
@click.option(
    "--data-root",
    type=click.Path(path_type=Path),
    envvar="BENCH_DATA_ROOT",
    help="Folder with one subfolder per dataset under its official name.",
)
@click.option(
    "--out", type=click.Path(path_type=Path), help="Run directory (default runs/<model>)."
)
@click.option("--checkpoint", type=click.Path(path_type=Path), help="Model weights file.")
@click.option("--device", help="cpu or cuda (models that use torch).")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]))
@click.option("--trust-checkpoint", is_flag=True, help="Allow full unpickling of a checkpoint.")
@click.option(
    "--model-option",
    "model_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra factory option, repeatable.",
)
@click.option(
    "--reference", help="Published row to compare with in reports, e.g. simpleclick-vit-b/cocolvis."
)
@click.option("--limit", type=int, help="Evaluate only the first N entries of each dataset.")
@click.option("--max-clicks", type=int, default=20, show_default=True)
@click.option("--pred-thr", type=float, default=0.49, show_default=True)
@click.option("--stop-at-iou", type=float, help="Official early stop at this IoU (default: never).")
@click.option("--threads", type=int, help="CPU threads for torch and OpenCV.")
@click.option("--save-masks", is_flag=True, help="Store predicted masks (compressed) for reports.")
@click.option("--overwrite", is_flag=True, help="Delete an existing run directory first.")
@click.option("--no-progress", is_flag=True)
def run_command(**kw: Any) -> None:
    """Evaluate a model on datasets with the official protocol; resumes an interrupted run."""
    from bench.engine.instance import ProtocolSettings
    from bench.engine.run import RunMismatchError, RunRequest, run
    from bench.metrics import summarize

    options: dict[str, Any] = {}
    for name in ("checkpoint", "device", "dtype"):
        if kw[name] is not None:
            options[name] = str(kw[name]) if name == "checkpoint" else kw[name]
    if kw["trust_checkpoint"]:
        options["trust_checkpoint"] = True
    try:
        options.update(parse_pairs(kw["model_options"], "--model-option"))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--model-option") from None
    out = kw["out"] or Path("runs") / kw["model"].replace("/", "_").replace(":", "_")
    if kw["overwrite"] and out.exists():
        shutil.rmtree(out)
    request = RunRequest(
        model=kw["model"],
        datasets=_split(kw["datasets"]),
        out=out,
        model_options=options,
        data_root=kw["data_root"],
        settings=ProtocolSettings(
            max_clicks=kw["max_clicks"], pred_thr=kw["pred_thr"], stop_at_iou=kw["stop_at_iou"]
        ),
        limit=kw["limit"],
        threads=kw["threads"],
        save_masks=kw["save_masks"],
        reference=kw["reference"],
        command=tuple(sys.argv),
        progress=not kw["no_progress"],
    )
    try:
        manifest = run(request)
    except (KeyError, FileNotFoundError, RunMismatchError, ValueError, TypeError) as exc:
        raise click.ClickException(str(exc.args[0] if isinstance(exc, KeyError) else exc)) from exc
    except Exception as exc:
        if type(exc).__name__ == "CheckpointError":  # no torch import just to name the class
            raise click.ClickException(str(exc)) from exc
        raise
    from bench.store import read_trajectories

    print_summary(summarize(read_trajectories(out), kw["max_clicks"]), manifest)
    click.echo(f"run directory: {out}")
