"""`bench datasets list|verify`: what the registry expects and whether a copy matches it.

Standalone: `python -m bench.cli.datasets verify --data-root /data`; the main CLI adds the
group with `main.add_command(datasets)`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bench.datasets import (
    DatasetSpec,
    dataset_root,
    default_data_root,
    get_dataset,
    is_present,
    split_dataset_specs,
)
from bench.datasets.resolve import all_datasets
from bench.datasets.verify import DatasetReport, verify_dataset

_DATA_ROOT = click.option(
    "--data-root",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="BENCH_DATA_ROOT",
    show_envvar=True,
    help="Folder holding one folder per dataset under its official name (GrabCut/, DAVIS/, ...).",
)
_DATASETS = click.option(
    "--datasets",
    "names",
    default=None,
    metavar="A,B",
    help="Comma-separated names, folder:PATH[,k=v], coco:JSON[,images=DIR], pkg.mod:function "
    "or file.py:function (default: all registered and installed plugins).",
)


def _selected(names: str | None) -> list[DatasetSpec]:
    try:
        if not names:
            return list(all_datasets().values())
        return [get_dataset(n) for n in split_dataset_specs(names)]
    except KeyError as exc:
        raise click.BadParameter(exc.args[0], param_hint="--datasets") from None
    except (ValueError, TypeError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def data_root_error(data_root: Path | None, specs: list[DatasetSpec]) -> str | None:
    """Why `data_root` cannot hold the requested datasets, or None; bundled sets need none.

    A missing root, a file, or a root holding none of the requested datasets is an error for
    `verify` and `list` alike (a typo must not read as "nothing wrong").
    """
    external = [s for s in specs if s.bundled_root is None]
    if not external:
        return None
    root = data_root if data_root is not None else default_data_root()
    if root is None:
        return (
            "no --data-root given (nor BENCH_DATA_ROOT): only the bundled demo set can be "
            "checked; point --data-root at the folder holding GrabCut/, DAVIS/, ..."
        )
    if not root.exists():
        return f"data root {root} does not exist"
    if not root.is_dir():
        return f"data root {root} is not a folder"
    if not any(is_present(s, root) for s in external):
        folders = ", ".join(dict.fromkeys(f"{s.folder}/" for s in external))
        return f"data root {root} holds none of the requested datasets (looked for {folders})"
    return None


def _status(spec: DatasetSpec, data_root: Path | None) -> tuple[str, str]:
    """(found/missing with the number of listed entries, path); cheap: no pixel is decoded."""
    try:
        root = dataset_root(spec, data_root)
    except FileNotFoundError:
        where = "(no --data-root)" if data_root is None else str(data_root / spec.folder)
        return "missing", where
    if not is_present(spec, data_root):
        return f"missing {spec.present_when}", str(root)
    try:
        entries = len(spec.list_samples(root))
    except (OSError, ValueError) as exc:
        return f"broken ({type(exc).__name__})", str(root)
    return f"found, {entries} images", str(root)


@click.group(name="datasets")
def datasets() -> None:
    """Benchmark datasets: expected counts, where they are, and whether a copy is sound."""


@datasets.command(name="list")
@_DATA_ROOT
@_DATASETS
@click.option("-v", "--verbose", is_flag=True, help="Also print download page and notes.")
def list_command(data_root: Path | None, names: str | None, verbose: bool) -> None:
    """Name, expected instances (paper), found/missing, path and citation of each dataset."""
    rows = [("NAME", "INSTANCES", "IMAGES", "STATUS", "PATH", "CITATION")]
    specs = _selected(names)
    for spec in specs:
        status, path = _status(spec, data_root)
        rows.append(
            (
                spec.name,
                _count(spec.expected_instances),
                _count(spec.expected_images),
                status,
                path,
                spec.citation,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        cells = [
            c.rjust(w) if i in (1, 2) else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))
        ]
        click.echo("  ".join(cells) + "  " + row[5])
    if verbose:
        for spec in specs:
            click.echo(f"\n{spec.name} ({spec.folder}/): {spec.url or 'bundled'}")
            if spec.notes:
                click.echo(f"  {spec.notes}")
    click.echo(
        "\nINSTANCES: the paper's count ('-': no confirmed official count). IMAGES: entries "
        "the official loader lists (Berkeley: 100 files showing 96 distinct images). "
        "`bench datasets verify` decodes every file (errors vs warnings)."
    )
    error = data_root_error(data_root, specs)
    if error is not None:
        click.echo(f"\nERROR: {error}")
        # Without any root the listing is still the registry's reference card.
        if data_root is not None or default_data_root() is not None:
            sys.exit(1)


def _progress_printer(name: str):
    """A stderr status line every 100 entries on a terminal (SBD takes a minute or two)."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        if done % 100 == 0:
            click.echo(f"\r{name}: {done}/{total} entries checked", err=True, nl=False)
            if done + 100 >= total:
                click.echo("", err=True)

    return show


def _describe(report: DatasetReport) -> str:
    layout = "layout ok" if report.layout_ok else "layout BROKEN"
    instances = f"{report.instances}/{_count(report.expected_instances)} instances"
    images = f"{report.images}/{_count(report.expected_images)} images"
    verdict = "OK" if report.ok else f"{len(report.problems)} error(s)"
    if report.warnings:
        verdict += f", {len(report.warnings)} warning(s)"
    fingerprint = f" [annotations {report.fingerprint}]" if report.fingerprint else ""
    return f"{report.name}: {layout}, {instances}, {images}: {verdict}{fingerprint}"


@datasets.command(name="verify")
@_DATA_ROOT
@_DATASETS
@click.option(
    "--strict", is_flag=True, help="Warnings count as errors too (exit 1 on any of them)."
)
def verify_command(data_root: Path | None, names: str | None, strict: bool) -> None:
    """Check layout and counts and list every bad file: exit status 1 on any error.

    ERROR lines are what a run would skip or fail (or a copy that cannot give the paper's
    numbers); WARN lines are accepted by the official rule, so a run evaluates them and
    records the same warning (with --strict they fail the check too). Without --datasets,
    datasets whose folder is absent are skipped (and said so), but the data root must exist
    and hold at least one of them; a dataset named with --datasets must be present.
    """
    explicit = bool(names)
    specs = _selected(names)
    failed = warned = 0
    root_error = data_root_error(data_root, specs)
    if root_error is not None and not explicit:
        click.echo(f"ERROR: {root_error}")
        failed += 1
    for spec in specs:
        if not explicit and not is_present(spec, data_root):
            click.echo(f"{spec.name}: not present, skipped")
            continue
        report = verify_dataset(spec, data_root, progress=_progress_printer(spec.name))
        click.echo(_describe(report))
        for problem in report.problems:
            click.echo(f"  ERROR {problem}")
        for warning in report.warnings:
            click.echo(f"  WARN {warning}")
        failed += not (report.clean if strict else report.ok)
        warned += len(report.warnings)
    if failed:
        what = "errors or warnings (--strict)" if strict else "errors"
        click.echo(f"FAILED: {failed} of the checks above found {what}")
        sys.exit(1)
    note = f", with {warned} warning(s) the official rule accepts" if warned else ""
    click.echo(f"all checked datasets are sound{note}")


@datasets.command(name="to-coco")
@click.argument("spec")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@_DATA_ROOT
def to_coco_command(spec: str, out: Path, data_root: Path | None) -> None:
    """Write dataset SPEC (any --datasets form) as a COCO instance file with RLE masks.

    Ignore pixels become iscrowd annotations, so `coco:OUT,images=DIR` reads the same
    instances back; DIR is the images' folder (printed).
    """
    import json

    from bench.datasets.coco import to_coco

    (dspec,) = _selected(spec)
    try:
        root = dataset_root(dspec, data_root)
        data, skipped = to_coco(dspec.list_samples(root))
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    for problem in skipped:
        click.echo(f"  SKIPPED {problem}", err=True)
    out.write_text(json.dumps(data))
    n_images, n_anns = len(data["images"]), len(data["annotations"])
    click.echo(f"{out}: {n_images} images, {n_anns} annotations (crowd = ignore)")


if __name__ == "__main__":
    datasets()
