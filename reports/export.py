"""Writing a `ReportTable` as CSV (tidy numbers) and LaTeX (booktabs), and shaping it for the
HTML template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from bench.reports.tables import CI_NOTE, FLAG_MARK, SIGNIFICANCE_NOTE, ReportTable

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


def _latex_cell(text: str, bold: bool, italic: bool, mark: str, interval: str) -> str:
    """One value cell: `\\textbf{4.15}$^{*}$ {\\scriptsize [3.80, 4.52]}`, the text escaped
    here because the cell carries markup Styler must leave alone."""
    if not text:
        return ""
    text = latex_escape(text)
    out = f"\\textbf{{{text}}}" if bold else f"\\textit{{{text}}}" if italic else text
    if mark:
        out += f"$^{{{mark}}}$"
    if interval:
        out += f" {{\\scriptsize {interval}}}"
    return out


def to_latex(table: ReportTable) -> str:
    """booktabs table; best cells in \\textbf (with the significance mark), published rows in
    italics, CIs in small type after the value."""
    kinds = [r.kind for r in table.rows]
    bold = table.bold.to_numpy()
    display = table.display.copy()
    for i in range(display.shape[0]):
        for j in range(display.shape[1]):
            display.iat[i, j] = _latex_cell(
                str(table.display.iat[i, j]),
                bool(bold[i, j]),
                kinds[i] == "published",
                table.mark(i, j),
                table.interval(i, j),
            )
    # Row labels repeat ("difference"), which Styler refuses as an index: make them a column.
    display.index = range(len(display))
    display.insert(0, ("", "Method"), [r.label for r in table.rows])
    display.columns = pd.MultiIndex.from_tuples([(g if g else " ", c) for g, c in display.columns])
    method = display.columns[0]
    styler = display.style.hide(axis="index")
    styler = styler.format(escape="latex", subset=[method]).format_index(escape="latex", axis=1)
    if not any(g.strip() for g in display.columns.get_level_values(0)):
        styler = styler.hide(axis="columns", level=0)
    caption = table.title
    if any(table.interval(i, j) for i in range(display.shape[0]) for j in range(bold.shape[1])):
        caption += ". " + CI_NOTE  # the method of the bracketed intervals, as in the HTML note
    if bold.any():
        caption += " " + SIGNIFICANCE_NOTE
    latex = styler.to_latex(
        hrules=True,
        multicol_align="c",
        column_format="l" + "r" * (display.shape[1] - 1),
        caption=latex_escape(caption),
        label=f"tab:{table.key}",
        position_float="centering",
    )
    return latex.replace(FLAG_MARK, r"\dag{}").replace("Δ", r"$\Delta$")


def write_table(table: ReportTable, stem: Path) -> dict[str, Path]:
    """`<stem>-<key>.csv` and `.tex` next to the report; returns both paths."""
    csv_path = stem.with_name(f"{stem.name}-{table.key}.csv")
    tex_path = stem.with_name(f"{stem.name}-{table.key}.tex")
    table.data.to_csv(csv_path, index=False)
    tex_path.write_text(to_latex(table))
    return {"csv": csv_path, "tex": tex_path}


def html_view(table: ReportTable) -> dict[str, Any]:
    """Plain structure the jinja template renders: header groups, columns and cells."""
    groups: list[tuple[str, int]] = []
    for group, _ in table.display.columns:
        if groups and groups[-1][0] == group:
            groups[-1] = (group, groups[-1][1] + 1)
        else:
            groups.append((group, 1))
    rows = []
    for i, style in enumerate(table.rows):
        cells = [
            {
                "text": table.display.iat[i, j],
                "bold": bool(table.bold.iat[i, j]),
                "title": table.titles.iat[i, j],
                "ci": table.interval(i, j),
                "mark": table.mark(i, j),
            }
            for j in range(table.display.shape[1])
        ]
        rows.append({"label": style.label, "kind": style.kind, "cells": cells})
    return {
        "key": table.key,
        "title": table.title,
        "groups": groups if any(g for g, _ in groups) else [],
        "columns": [c for _, c in table.display.columns],
        "rows": rows,
        "notes": list(table.notes),
        "empty": table.empty,
    }
