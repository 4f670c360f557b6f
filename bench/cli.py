"""The `bench` command line: thin wrappers around `bench.run`, `bench.metrics` and friends."""

from __future__ import annotations

import importlib
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import click

from bench import __version__


def _parse_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered in {"none", "null"}:
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _split(values: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in values.split(",") if v.strip())


@click.group()
@click.version_option(__version__, prog_name="iseg-bench")
def main() -> None:
    """Reproducible benchmark harness for click-based interactive segmentation."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)


@main.command("run")
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
    from bench.metrics import summarize
    from bench.run import RunMismatchError, RunRequest, run
    from bench.runner import ProtocolSettings

    options: dict[str, Any] = {}
    for name in ("checkpoint", "device", "dtype"):
        if kw[name] is not None:
            options[name] = str(kw[name]) if name == "checkpoint" else kw[name]
    if kw["trust_checkpoint"]:
        options["trust_checkpoint"] = True
    for item in kw["model_options"]:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--model-option")
        options[key.strip()] = _parse_value(value.strip())
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

    _print_summary(summarize(read_trajectories(out), kw["max_clicks"]), manifest)
    click.echo(f"run directory: {out}")


def _print_summary(table: Any, manifest: dict[str, Any]) -> None:
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


@main.command("summary")
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
    _print_summary(table, manifest)
    click.echo(f"wrote {run_dir / SUMMARY}")


@main.group("models")
def models_group() -> None:
    """Registered models."""


@models_group.command("list")
def models_list() -> None:
    """Every model: family, weights needed or not, params, input size, checkpoints."""
    from bench.adapters import all_models

    for spec in all_models().values():
        params = f"{spec.params_m:.2f}M" if spec.params_m is not None else "-"
        weights = "needs weights" if spec.needs_weights else "no weights"
        click.echo(
            f"{spec.name:24s} {spec.family:12s} {weights:14s} {params:>9s}  {spec.input_size}"
        )
        if spec.description:
            click.echo(f"{'':24s} {spec.description}")
        if spec.checkpoint_files:
            click.echo(f"{'':24s} checkpoints: {', '.join(spec.checkpoint_files)}")
        if spec.download_page:
            click.echo(f"{'':24s} download: {spec.download_page}")


class _LazyCommand(click.Command):
    """A subcommand whose module (and its heavy imports, e.g. torch) loads only when used."""

    def __init__(self, name: str, target: str, short_help: str):
        super().__init__(name, short_help=short_help, add_help_option=False)
        self.target = target

    def _load(self) -> click.Command:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)

    def make_context(self, info_name, args, parent=None, **extra):  # noqa: ANN001
        # click runs the command of the returned context: the real one.
        return self._load().make_context(info_name, args, parent=parent, **extra)


for _name, _target, _help in (
    ("datasets", "bench.cli_datasets:datasets", "Benchmark datasets: list and verify."),
    ("report", "bench.cli_report:report_command", "One self-contained HTML report from runs."),
    ("profile", "bench.cli_profile:profile_command", "Params, FLOPs, peak memory, s/click."),
):
    main.add_command(_LazyCommand(_name, _target, _help))

if __name__ == "__main__":
    main()
