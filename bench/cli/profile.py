"""`bench profile`: the compute table (paper Tables 1 and 5) as `profile.csv` and on screen."""

from __future__ import annotations

import itertools
from pathlib import Path

import click
import torch

from bench.profile import (
    DTYPES,
    TARGETS,
    ProfileRow,
    check_input_size,
    parse_dtype,
    profile_one,
    resolve_target,
    write_csv,
)
from bench.profile import clicks as profile_clicks

SHOWN = (
    ("model", "model"),
    ("input_size", "S"),
    ("device", "device"),
    ("dtype", "dtype"),
    ("params_M", "params M"),
    ("params_backbone_Mi", "bb Mi"),
    ("params_neck_Mi", "neck Mi"),
    ("params_head_Mi", "head Mi"),
    ("params_thop_M", "thop M"),
    ("gflops_paper", "GFLOPs paper"),
    ("gflops_full", "GFLOPs full"),
    ("peak_mem_MiB", "peak MiB"),
    ("spc_model_median_s", "model s/click"),
    ("spc_model_iqr_s", "IQR"),
    ("spc_harness_median_s", "harness s/click"),
)


def _split(values: str) -> list[str]:
    return [v.strip() for v in values.split(",") if v.strip()]


def format_table(rows: list[ProfileRow]) -> str:
    """A fixed-width table of the main columns plus the conventions they follow."""
    header = [title for _, title in SHOWN]
    body = [[_fmt(getattr(row, name)) for name, _ in SHOWN] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    if rows:
        first = rows[0]
        lines += [
            "",
            f"params M: {first.params_convention}; thop M: paper Table 5 (thop's count)",
            f"GFLOPs paper: {first.flops_convention_paper}",
            f"GFLOPs full: {first.flops_convention_full}",
            "peak MiB: " + ", ".join(sorted({r.mem_kind for r in rows if r.mem_kind})),
        ]
        datasets = sorted({r.spc_dataset for r in rows if r.spc_dataset})
        if datasets:
            lines.append(
                "s/click: median and IQR over the clicks of the official loop on "
                + ", ".join(datasets)
                + " (warm-up clicks excluded); model = network forward passes, "
                "harness = the rest of each click"
            )
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.4f}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


@click.command("profile")
@click.option(
    "--models",
    default=None,
    help="Comma-separated model names (default simpleclick-vit-b). "
    + ", ".join(TARGETS)
    + " and the SAM family are counted in the paper's conventions; any other registered "
    "model is profiled through its calls, like --model.",
)
@click.option(
    "--model",
    "plugin_models",
    multiple=True,
    help="Any predictor, as `bench run --model` takes it (file.py:factory, module:factory, "
    "an entry point): seconds per click, peak memory and FLOPs per click measured through "
    "its calls on real instances (repeatable).",
)
@click.option(
    "--sizes",
    default="",
    help="Comma-separated square input sizes; default: each model's paper size.",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--dtype", type=click.Choice(list(DTYPES)), default="float32", show_default=True)
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Official checkpoint to load (one model only); default: random weights.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Run directory: writes DIR/profile.csv.",
)
@click.option(
    "--clicks",
    type=click.IntRange(min=1),
    default=profile_clicks.DEFAULT_MAX_CLICKS,
    show_default=True,
    help="Clicks per instance in the timed loop.",
)
@click.option(
    "--warmup",
    type=click.IntRange(min=0),
    default=profile_clicks.DEFAULT_WARMUP_CLICKS,
    show_default=True,
    help="Clicks at the start of the loop left out of the statistics.",
)
@click.option("--dataset", default="demo", show_default=True, help="Dataset of the click loop.")
@click.option(
    "--data-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder holding the dataset (not needed for demo).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Time only the first N instances of the dataset (default: all).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="torch intra-op CPU threads (default: torch's choice). On a shared CPU, fewer threads "
    "than free cores avoid OpenMP stalls that inflate timings many times over.",
)
@click.option("--no-spc", is_flag=True, help="Skip the click loop (counts and memory only).")
def profile_command(
    models: str | None,
    plugin_models: tuple[str, ...],
    sizes: str,
    device: str,
    dtype: str,
    checkpoint: Path | None,
    out_dir: Path | None,
    clicks: int,
    warmup: int,
    dataset: str,
    data_root: Path | None,
    limit: int | None,
    threads: int | None,
    no_spc: bool,
) -> None:
    """Parameters, FLOPs (paper and full conventions), peak memory and seconds per click."""
    names = _split(models) if models is not None else ([] if plugin_models else [DEFAULT_MODEL])
    plugins = [n for n in names if not _has_counter(n)] + list(plugin_models)
    try:
        targets = [resolve_target(name) for name in names if _has_counter(name)]
        for name in plugins:
            _resolve_model(name)
    except KeyError as exc:
        raise click.BadParameter(str(exc.args[0]), param_hint="--models") from None
    except (ValueError, FileNotFoundError) as exc:
        raise click.BadParameter(str(exc), param_hint="--model") from None
    if not targets and not plugins:
        raise click.BadParameter("give at least one model name", param_hint="--models")
    try:
        size_list = [int(s) for s in _split(sizes)]
    except ValueError:
        raise click.BadParameter(
            f"{sizes!r}: expected comma-separated whole numbers of pixels", param_hint="--sizes"
        ) from None
    try:  # every model at every size, before any network is built
        for target in targets:
            for size in size_list or [target.size]:
                check_input_size(target, size)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--sizes") from None
    if plugins and no_spc:
        raise click.BadParameter(
            "--no-spc: a model profiled through its calls needs the click loop",
            param_hint="--model",
        )
    if checkpoint is not None and (len(targets) != 1 or plugins):
        raise click.BadParameter("--checkpoint needs exactly one model in --models")
    samples = None
    if not no_spc:
        samples = _sample_source(dataset, data_root, limit)
    label = dataset if limit is None else f"{dataset} (first {limit} instances)"
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    rows = []
    try:
        for target in targets:
            for size in size_list or [target.size]:
                rows.append(
                    profile_one(
                        target,
                        size,
                        device=device,
                        dtype=parse_dtype(dtype),
                        checkpoint=checkpoint,
                        samples=samples,
                        dataset=label,
                        max_clicks=clicks,
                        warmup_clicks=warmup,
                    )
                )
                if out_dir is not None:
                    write_csv(rows, out_dir / "profile.csv")  # rewritten after each row
        for name in plugins:
            from bench.profile.plugin import profile_predictor

            try:
                rows.append(profile_predictor(name, samples, label, device, clicks, warmup))
            except (TypeError, ValueError) as exc:
                raise click.ClickException(f"{name}: {exc}") from None
            if out_dir is not None:
                write_csv(rows, out_dir / "profile.csv")
    finally:
        torch.set_num_threads(previous_threads)  # process-wide; callers in-process keep theirs
    click.echo(format_table(rows))
    if out_dir is not None:
        click.echo(f"\nwrote {out_dir / 'profile.csv'}")


DEFAULT_MODEL = "simpleclick-vit-b"


def _has_counter(name: str) -> bool:
    """A family with paper-convention counters (SimpleClick, RITM, SAM)."""
    try:
        resolve_target(name)
    except KeyError:
        return False
    return True


def _resolve_model(name: str) -> None:
    from bench.adapters import resolve_model

    resolve_model(name)


def _sample_source(dataset: str, data_root: Path | None, limit: int | None = None):
    """A callable yielding the dataset's instances in official order, loaded lazily."""
    from bench.datasets import list_samples

    try:
        refs = list_samples(dataset, data_root)
    except (KeyError, FileNotFoundError) as exc:
        raise click.BadParameter(str(exc), param_hint="--dataset/--data-root") from None

    def samples():
        instances = (sample for ref in refs for sample in ref.load())
        yield from itertools.islice(instances, limit)

    return samples
