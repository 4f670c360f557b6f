"""Writing a `ReportTable` as CSV (tidy numbers) and LaTeX (booktabs), and shaping it for the
HTML template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from bench.reports.tables import FLAG_MARK, ReportTable


def to_latex(table: ReportTable) -> str:
    """booktabs table; best cells in \\textbf, published rows in italics."""
    kinds = [r.kind for r in table.rows]
    display = table.display.copy()
    # Row labels repeat ("difference"), which Styler refuses as an index: make them a column.
    display.index = range(len(display))
    display.insert(0, ("", "Method"), [r.label for r in table.rows])
    display.columns = pd.MultiIndex.from_tuples([(g if g else " ", c) for g, c in display.columns])
    bold = table.bold.to_numpy()

    def cell_styles(frame: pd.DataFrame) -> pd.DataFrame:
        styles = pd.DataFrame("", index=frame.index, columns=frame.columns)
        for i in range(frame.shape[0]):
            for j in range(1, frame.shape[1]):
                if bold[i, j - 1]:
                    styles.iat[i, j] = "textbf:--rwrap;"
                elif kinds[i] == "published" and frame.iat[i, j]:
                    styles.iat[i, j] = "textit:--rwrap;"
        return styles

    styler = display.style.apply(cell_styles, axis=None).hide(axis="index")
    styler = styler.format(escape="latex").format_index(escape="latex", axis=1)
    if not any(g.strip() for g in display.columns.get_level_values(0)):
        styler = styler.hide(axis="columns", level=0)
    latex = styler.to_latex(
        hrules=True,
        multicol_align="c",
        column_format="l" + "r" * (display.shape[1] - 1),
        caption=table.title.replace("%", r"\%"),
        label=f"tab:{table.key}",
        position_float="centering",
    )
    return latex.replace(FLAG_MARK, r"\dag{}")


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
