"""Published numbers that a run can be compared with, each with the place it was printed.

`reference.csv` holds three transcriptions:
* the RITM README's "Pretrained models" table (SamsungLabs/ritm_interactive_segmentation),
  by hand; `paper_table` is empty on those rows;
* SimpleClick (ICCV 2023, arXiv 2210.11006) Tables 2, 3, 4 and 5, the SimpleClick rows and
  every baseline the paper compares with, imported from `spec/published_simpleclick.csv` with
  its caveats kept in `source` (Table 3's training-set marks are unconfirmed; one Table 4
  digit is read from a damaged print). `paper_table` says which table.
* CFR-ICL (AAAI 2024, arXiv 2303.05620v2): its README prints no numbers, and its paper's
  tables could not be read here, so its rows are the paper's numbers as Papers with Code lists
  them, each `source` naming that listing; keys carry the evaluation setting, because CFR's
  numbers depend on it (`cfr-icl-vit-h-cf1/cocolvis` = `--cf-n=1` without `--acf`, our
  `cfr-icl-vit-h --model-option cf_n=1 --model-option acf=false`); `paper_table` is empty.
A number that could not be found in those sources is left out rather than guessed, so a
missing cell means "not published here", never zero.

Keys (`reference`): result rows are keyed by `<model>/<train set>` (the manifest's
`model.reference`, e.g. `simpleclick-vit-h/sbd`, `ritm-hrnet18/cocolvis`), with our registry's
model names where we implement the method (`focalclick-segformer-b3-s2/cocolvis`,
`cdnet-resnet34/sbd`) and `<method>-<backbone>` otherwise (`focuscut-resnet-50/sbd`; the
paper's two unnamed rows are `table2-row2-...` and `table3-row3/unknown`). Compute rows
(`table` = `compute`, SimpleClick Table 5) are keyed by the architecture alone
(`simpleclick-vit-b`, `ritm-hrnet18`, `focalclick-segformer-b0-s2`, `cdnet-resnet34`; the
backbone, `resnet-50`, where we do not implement the model), because parameters and FLOPs do
not depend on the training data. Table 5's SegFormer-B0/B3 and ResNet-34 rows are FocalClick's
and CDNet's networks (their thop counts at 256 / 384 px equal golden/clickseg/compute.json's).

Where the RITM README and SimpleClick's Table 2 both give a number for one key, the README's
(the RITM authors' own) is the one shown beside a run, and the hover text names both sources
and says whether they agree (they differ on HRNet-32's PascalVOC NoC@85: 2.57 vs 2.19).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
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
        table = pd.read_csv(
            fh,
            dtype={
                "input_size": "string",
                "dataset": "string",
                "paper_table": "string",
                "train_set": "string",
            },
        )
    return table


def known_references() -> list[str]:
    """Every `<model>/<train set>` key with a published result, for `--reference` help/checks."""
    table = reference_table()
    return sorted(set(table.loc[table["table"] != "compute", "reference"]))


def architecture(reference: str) -> str:
    """`ritm-hrnet18/cocolvis` -> `ritm-hrnet18`."""
    return reference.split("/", 1)[0]


def _fmt(value: float) -> str:
    return f"{value:g}"


def _merged(rows: pd.DataFrame) -> Published:
    """First row's value; the hover names every source and whether the others agree."""
    first = rows.iloc[0]
    value = float(first["value"])
    source = str(first["source"])
    for _, other in rows.iloc[1:].iterrows():
        if float(other["value"]) == value:
            source += f"; same value in {other['source']}"
        else:
            source += f"; {other['source']} gives {_fmt(float(other['value']))} instead"
    return Published(value, source)


def published_metric(reference: str | None, dataset: str, metric: str) -> Published | None:
    """The published value of `metric` (e.g. `NoC@90`, `mIoU@10`) on `dataset` (official name)."""
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
    return _merged(rows)


def input_side(input_size: object) -> int | None:
    """Square side of an input size written as `448`, `448x448` or `(448, 448)`; else None."""
    numbers = [int(n) for n in re.findall(r"\d+", str(input_size))]
    if not numbers or any(n != numbers[0] for n in numbers):
        return None
    return numbers[0]


def published_compute(
    reference: str | None, metric: str, input_size: object = None
) -> Published | None:
    """Published `params_M` (any input) or `gflops` / `mem_G` / `spc_ms` (at this square input
    size), from SimpleClick Table 5."""
    if not reference:
        return None
    table = reference_table()
    rows = table[
        (table["table"] == "compute")
        & (table["reference"] == architecture(reference))
        & (table["metric"] == metric)
    ]
    if metric != "params_M":
        side = input_side(input_size)
        rows = rows[rows["input_size"].map(input_side) == side] if side is not None else rows[:0]
    if rows.empty:
        return None
    return _merged(rows.drop_duplicates("value"))


PAPER_ROW_COLUMNS = (
    "reference",
    "method",
    "backbone",
    "train_set",
    "dataset",
    "metric",
    "value",
    "source",
    "gflops",
    "gflops_input_size",
    "gflops_source",
)


def _table5_gflops() -> pd.DataFrame:
    """Per backbone: the GFLOPs of its largest Table 5 input size (the size Table 2 used)."""
    table = reference_table()
    rows = table[(table["paper_table"] == "5") & (table["metric"] == "gflops")].copy()
    rows["side"] = rows["input_size"].map(input_side)
    rows = rows.sort_values("side").drop_duplicates("backbone", keep="last")
    return pd.DataFrame(
        {
            "backbone": rows["backbone"],
            "gflops": rows["value"].astype(float),
            "gflops_input_size": rows["side"],
            "gflops_source": rows["source"]
            + ", backbone "
            + rows["backbone"]
            + " at "
            + rows["side"].astype(str)
            + " px (matched by backbone name: Table 5 lists backbones, not methods)",
        }
    )


def published_paper_rows(
    paper_table: int = 2, exclude_references: Iterable[str] = ()
) -> pd.DataFrame:
    """Every method's published results in one of SimpleClick's tables (2: NoC, 3: medical
    mIoU, 4: SBD after C+L training), for published-only rows and for placing the paper's
    methods in Figure 1.

    One row per (reference, dataset, metric), in the paper's row order, with the columns of
    `PAPER_ROW_COLUMNS`. `method` and `backbone` are as printed; `gflops` is SimpleClick
    Table 5's count for a backbone of that name (NaN where Table 5 has none); its source says
    the match is by name. `exclude_references` drops keys already shown beside a run.
    """
    table = reference_table()
    rows = table[table["paper_table"] == str(paper_table)]
    rows = rows[~rows["reference"].isin(set(exclude_references))]
    rows = rows.merge(_table5_gflops(), on="backbone", how="left")
    return rows.loc[:, list(PAPER_ROW_COLUMNS)].reset_index(drop=True)
