"""Published numbers that a run can be compared with, each with the place it was printed.

`reference.csv` is transcribed by hand from the RITM README ("Pretrained models" table of
SamsungLabs/ritm_interactive_segmentation) and from SimpleClick (arXiv 2210.11006) Table 5.
A number that could not be found in those sources is left out rather than guessed, so a
missing cell means "not published here", never zero.

Keys: NoC rows are keyed by `<model>/<train set>` (the manifest's `model.reference`, e.g.
`ritm-hrnet18/cocolvis`), compute rows by the architecture alone (`ritm-hrnet18`), because
parameters and FLOPs do not depend on the training data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import pandas as pd


@dataclass(frozen=True)
class Published:
    value: float
    source: str


@lru_cache(maxsize=1)
def reference_table() -> pd.DataFrame:
    with resources.files("bench.reports").joinpath("reference.csv").open("r") as fh:
        table = pd.read_csv(fh, dtype={"input_size": "string", "dataset": "string"})
    return table


def architecture(reference: str) -> str:
    """`ritm-hrnet18/cocolvis` -> `ritm-hrnet18`."""
    return reference.split("/", 1)[0]


def published_metric(reference: str | None, dataset: str, metric: str) -> Published | None:
    """The published value of `metric` (e.g. `NoC@90`) on `dataset` (official folder name)."""
    if not reference:
        return None
    table = reference_table()
    rows = table[
        (table["reference"] == reference)
        & (table["dataset"] == dataset)
        & (table["metric"] == metric)
    ]
    if rows.empty:
        return None
    row = rows.iloc[0]
    return Published(float(row["value"]), str(row["source"]))


def input_side(input_size: object) -> int | None:
    """Square side of an input size written as `448`, `448x448` or `(448, 448)`; else None."""
    numbers = [int(n) for n in re.findall(r"\d+", str(input_size))]
    if not numbers or any(n != numbers[0] for n in numbers):
        return None
    return numbers[0]


def published_compute(
    reference: str | None, metric: str, input_size: object = None
) -> Published | None:
    """Published `params_M` (any input) or `gflops` (at this square input size)."""
    if not reference:
        return None
    table = reference_table()
    rows = table[(table["reference"] == architecture(reference)) & (table["metric"] == metric)]
    if metric == "gflops":
        side = input_side(input_size)
        rows = rows[rows["input_size"].map(input_side) == side] if side is not None else rows[:0]
    if rows.empty:
        return None
    row = rows.iloc[0]
    return Published(float(row["value"]), str(row["source"]))
