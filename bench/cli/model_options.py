"""The model options `bench run` and `bench demo` share, as one click decorator and one parser,
so that both commands build a predictor from the same words in the same way (and the
`--data-root` they both read datasets from)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from bench.options import parse_pairs

_OPTIONS = (
    click.option("--checkpoint", type=click.Path(path_type=Path), help="Model weights file."),
    click.option("--device", help="cpu or cuda (models that use torch)."),
    click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"])),
    click.option("--trust-checkpoint", is_flag=True, help="Allow full unpickling of a checkpoint."),
    click.option(
        "--model-option",
        "model_options",
        multiple=True,
        metavar="KEY=VALUE",
        help="Extra factory option, repeatable (values: bench/options.py).",
    ),
)


data_root_option = click.option(
    "--data-root",
    type=click.Path(path_type=Path),
    envvar="BENCH_DATA_ROOT",
    help="Folder with one subfolder per dataset under its official name.",
)


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --checkpoint, --device, --dtype, --trust-checkpoint and --model-option."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def factory_options(kw: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments a model factory gets from the parsed command line."""
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
    return options
