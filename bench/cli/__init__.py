"""The `bench` command line: thin wrappers around `bench.run`, `bench.metrics` and friends."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys

import click

from bench import __version__


@click.group()
@click.version_option(__version__, prog_name="iseg-bench")
def main() -> None:
    """Reproducible benchmark harness for click-based interactive segmentation."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)


@main.group("models")
def models_group() -> None:
    """Registered models."""


@models_group.command("list")
def models_list() -> None:
    """Every model: family, weights needed or not, params, input size, checkpoints."""
    from bench.adapters import all_models

    click.echo(f"{'name':24s} {'family':12s} {'weights':14s} {'params':>9s}  input size")
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
        needed = spec.extra.get("import_name")
        if needed and importlib.util.find_spec(needed) is None:
            click.echo(f"{'':24s} not installed: {spec.extra.get('install', needed)}")


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
    ("run", "bench.cli.run:run_command", "Evaluate a model on datasets (resumable)."),
    ("summary", "bench.cli.summary:summary_command", "Metrics of one run; writes summary.csv."),
    ("merge", "bench.cli.merge:merge_command", "One run directory from shard directories."),
    ("compare", "bench.cli.compare:compare_command", "Paired tests between runs."),
    ("rescore", "bench.cli.rescore:rescore_command", "Boundary IoU of an old run from its masks."),
    ("demo", "bench.cli.demo:demo_command", "Interactive segmentation in the browser."),
    ("datasets", "bench.cli.datasets:datasets", "Benchmark datasets: list and verify."),
    ("report", "bench.cli.report:report_command", "One self-contained HTML report from runs."),
    ("profile", "bench.cli.profile:profile_command", "Params, FLOPs, peak memory, s/click."),
    (
        "robustness",
        "bench.cli.robustness:robustness_command",
        "Base run + RClicks click groups; ΔSB, ΔGR, ΔHH, NSR.",
    ),
):
    main.add_command(_LazyCommand(_name, _target, _help))

if __name__ == "__main__":
    main()
