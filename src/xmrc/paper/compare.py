"""Every published cell a run produced, beside ours: same model (through the registry's `paper_name`), same
table, direction or summary column, same unit.

Our tables are read as written (2 decimals), the paper's as printed (2 decimals), so the difference
ours - paper is rounded to 2 decimals too: 0.00 is agreement to the printed precision. A cell is compared when
both numbers exist: the paper lost some of Table 3, and our run leaves a rate undefined where a direction has
no wrong answer.

Files written by `write_comparison` (in results/<run>/tables/):
  paper_comparison.csv           one row per compared cell: table, measure, model, paper_model, column, unit,
                                 paper, ours, difference
  paper_comparison_summary.csv   one row per published (part of a) table: cells compared, published cells,
                                 mean and largest absolute difference, the largest differences, a note when
                                 nothing was compared (why)
  paper_comparison.md            both, under a line that counts the compared cells
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xmrc.config import Registry
from xmrc.exceptions import XmrcError
from xmrc.io import read_table, write_csv, write_text
from xmrc.paper.published import PAPER_TABLES, PaperTable, our_file_names, published_cells, published_table
from xmrc.tables import markdown_table

CELL_COLUMNS = ["table", "measure", "model", "paper_model", "column", "unit", "paper", "ours", "difference"]
SUMMARY_COLUMNS = [
    "table",
    "measure",
    "unit",
    "our_file",
    "cells",
    "published",
    "mean_abs_difference",
    "max_abs_difference",
    "largest_differences",
    "note",
]
LARGEST_SHOWN = 3


def paper_names(models, registry: Registry, source: str) -> dict[str, str]:
    """Our row names (registry names or keys) -> the paper's printed names, for the models the paper reports."""
    names = {}
    for model in models:
        try:
            entry = registry.get(str(model))
        except XmrcError as error:
            raise XmrcError(f"{source}: {error}") from None
        if entry.paper_name:
            names[str(model)] = entry.paper_name
    return names


def table_cells(spec: PaperTable, ours: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    """The compared cells of one published table: our rows of the paper's models, the columns both have."""
    paper = published_table(spec.published)
    ours = ours.set_index("model")
    columns = [c for c in (spec.columns or paper.columns) if c in paper.columns and c in ours.columns]
    rows = []
    for model, values in ours.iterrows():
        paper_model = names.get(str(model))
        if paper_model not in paper.index:
            continue
        for column in columns:
            published, produced = paper.at[paper_model, column], values[column]
            if pd.isna(published) or pd.isna(produced):
                continue
            published, produced = round(float(published), 2), round(float(produced), 2)
            rows.append(
                [
                    spec.table,
                    spec.measure,
                    str(model),
                    paper_model,
                    column,
                    spec.unit,
                    published,
                    produced,
                    round(produced - published, 2),
                ]
            )
    return pd.DataFrame(rows, columns=CELL_COLUMNS)


def _largest(cells: pd.DataFrame) -> str:
    """The largest nonzero differences, largest first ("" where every cell agrees)."""
    cells = cells[cells["difference"] != 0]
    top = cells.reindex(cells["difference"].abs().sort_values(ascending=False, kind="stable").index)
    return "; ".join(
        f"{row.model} {row.column}: {row.ours:.2f} vs {row.paper:.2f} ({row.difference:+.2f})"
        for row in top.head(LARGEST_SHOWN).itertuples()
    )


def _why_none(spec: PaperTable, ours: pd.DataFrame | None, names: dict[str, str]) -> str:
    if ours is None:
        return f"this run did not produce {spec.ours}"
    paper_models = set(published_table(spec.published).index)
    if not any(names.get(str(model)) in paper_models for model in ours["model"]):
        return "no model of this run is in the paper's table" if names else "no model of this run is the paper's"
    return "no cell both report"


def read_our_tables(paths: list[str | Path]) -> dict[str, pd.DataFrame]:
    """Our tables keyed by file name, as `compare` takes them; each must be one the comparison reads."""
    known = our_file_names()
    ours = {}
    for path in paths:
        name = Path(path).name
        if name not in known:
            raise XmrcError(f"{path}: not a table the paper comparison reads (expected one of: {', '.join(known)})")
        ours[name] = read_table(path, required=["model"])
    return ours


def compare(ours_by_file: dict[str, pd.DataFrame], registry: Registry) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cells, summary) for our tables keyed by file name (see published.PAPER_TABLES); a table missing from
    `ours_by_file` is one the run did not produce."""
    all_cells, summary = [], []
    for spec in PAPER_TABLES:
        ours = ours_by_file.get(spec.ours)
        names = paper_names(ours["model"], registry, spec.ours) if ours is not None else {}
        cells = table_cells(spec, ours, names) if ours is not None else pd.DataFrame(columns=CELL_COLUMNS)
        absolute = cells["difference"].abs()
        summary.append(
            {
                "table": spec.table,
                "measure": spec.measure,
                "unit": spec.unit,
                "our_file": spec.ours,
                "cells": len(cells),
                "published": published_cells(spec),
                "mean_abs_difference": absolute.mean() if len(cells) else float("nan"),
                "max_abs_difference": absolute.max() if len(cells) else float("nan"),
                "largest_differences": _largest(cells) if len(cells) else "",
                "note": "" if len(cells) else _why_none(spec, ours, names),
            }
        )
        if len(cells):
            all_cells.append(cells)
    cells = pd.concat(all_cells, ignore_index=True) if all_cells else pd.DataFrame(columns=CELL_COLUMNS)
    return cells, pd.DataFrame(summary, columns=SUMMARY_COLUMNS)


def headline(cells: pd.DataFrame, summary: pd.DataFrame) -> str:
    """One sentence: how many cells were compared, or why none was."""
    if cells.empty:
        reasons = summary["note"].unique()
        if len(reasons) == 1 and reasons[0] == "no model of this run is the paper's":
            return "No published cell compared: no model of this run is the paper's."
        return (
            "No published cell compared: this run has no model of the paper, or did not produce the tables "
            "that hold the paper's numbers (see `note`)."
        )
    tables = summary.loc[summary["cells"] > 0, "table"].nunique()
    return (
        f"{len(cells)} of {int(summary['published'].sum())} published cells compared, in {tables} of the "
        f"paper's tables; mean absolute difference {cells['difference'].abs().mean():.2f} "
        "(percentage points, fractions for Table 2's ratios)."
    )


def write_comparison(cells: pd.DataFrame, summary: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """paper_comparison.csv, paper_comparison_summary.csv and paper_comparison.md (see the module docstring)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = (
        "# The paper's published numbers beside ours\n\n"
        + headline(cells, summary)
        + "\n\n## Per table\n\n"
        + markdown_table(summary)
        + "\n## Every compared cell (difference = ours - paper)\n\n"
        + (markdown_table(cells) if len(cells) else "None.\n")
    )
    return [
        write_csv(cells, out_dir / "paper_comparison.csv", float_format="%.2f"),
        write_csv(summary, out_dir / "paper_comparison_summary.csv", float_format="%.2f"),
        write_text(report, out_dir / "paper_comparison.md"),
    ]
