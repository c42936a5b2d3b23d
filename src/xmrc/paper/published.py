"""The paper's published tables (package data: resources/paper/, see its README) and where a run keeps the
same cells.

Each `PaperTable` names one published CSV, the file of `results/<run>/tables/` that holds the same cells in
the same layout (model rows; direction or summary columns; percent, except Table 2's ratios, fractions) and
the columns taken from it. Table 10 (the TULU-tuned LLaMA-3.1-8B) is the tuned model's row of our 2-shot F1
tables, like Table 6's rows; Table 2 is split by source file and by unit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import pandas as pd

from xmrc.exceptions import XmrcError

RESOURCE_DIR = "resources/paper"
RATIO_COLUMNS = ("en-x / en-en", "x-x / en-en")


@dataclass(frozen=True)
class PaperTable:
    table: str  # the paper's table number, e.g. "Table 5a"
    published: str  # packaged CSV stem, e.g. "table5a_0shot_em_en-x"
    ours: str  # file name of our table in results/<run>/tables/
    measure: str  # what the cells are, for people
    columns: tuple[str, ...] | None = None  # the published columns compared (None: every column both have)
    unit: str = "percent"  # percent or fraction

    @property
    def label(self) -> str:
        return f"{self.table}: {self.measure}"


PAPER_TABLES = (
    PaperTable(
        "Table 2",
        "table2_2shot_summary",
        "summary_2shot.csv",
        "2-shot F1, en-en and means",
        ("en-en", "mean en-x", "mean x-x"),
    ),
    PaperTable(
        "Table 2",
        "table2_2shot_summary",
        "summary_2shot.csv",
        "2-shot F1 ratios to en-en",
        RATIO_COLUMNS,
        unit="fraction",
    ),
    PaperTable(
        "Table 2",
        "table2_2shot_summary",
        "error_summary_2shot_en-x.csv",
        "2-shot en-x error rates",
        ("mean language", "mean generation", "en-en generation"),
    ),
    PaperTable("Table 3", "table3_oracle", "oracle_summary.csv", "oracle retrieval accuracy"),
    PaperTable("Table 5a", "table5a_0shot_em_en-x", "em_0shot_en-x.csv", "0-shot EM, en-x"),
    PaperTable("Table 5b", "table5b_0shot_f1_en-x", "f1_0shot_en-x.csv", "0-shot F1, en-x"),
    PaperTable("Table 5c", "table5c_0shot_em_x-x", "em_0shot_x-x.csv", "0-shot EM, x-x"),
    PaperTable("Table 5d", "table5d_0shot_f1_x-x", "f1_0shot_x-x.csv", "0-shot F1, x-x"),
    PaperTable("Table 6a", "table6a_2shot_f1_en-x", "f1_2shot_en-x.csv", "2-shot F1, en-x"),
    PaperTable("Table 6b", "table6b_2shot_f1_x-x", "f1_2shot_x-x.csv", "2-shot F1, x-x"),
    PaperTable(
        "Table 7",
        "table7_2shot_language_error_en-x",
        "language_error_2shot_en-x.csv",
        "2-shot en-x language error rate",
    ),
    PaperTable(
        "Table 8",
        "table8_2shot_generation_failure_en-x",
        "generation_failure_2shot_en-x.csv",
        "2-shot en-x generation failure rate",
    ),
    PaperTable("Table 9a", "table9a_2shot_gibberish_en-x", "gibberish_2shot_en-x.csv", "2-shot en-x gibberish rate"),
    PaperTable("Table 9b", "table9b_2shot_refusal_en-x", "refusal_2shot_en-x.csv", "2-shot en-x refusal rate"),
    PaperTable("Table 9c", "table9c_2shot_blank_en-x", "blank_2shot_en-x.csv", "2-shot en-x blank rate"),
    PaperTable("Table 10a", "table10a_2shot_f1_en-x_tuned", "f1_2shot_en-x.csv", "2-shot F1, en-x, TULU-tuned"),
    PaperTable("Table 10b", "table10b_2shot_f1_x-x_tuned", "f1_2shot_x-x.csv", "2-shot F1, x-x, TULU-tuned"),
)


def our_file_names() -> list[str]:
    """The files of results/<run>/tables/ the comparison reads (each once, in table order)."""
    return list(dict.fromkeys(spec.ours for spec in PAPER_TABLES))


def _published_rows(file_name: str) -> list[str] | None:
    """The paper's models (in its order) of every published table held in our file `file_name`."""
    specs = [spec for spec in PAPER_TABLES if spec.ours == file_name]
    if not specs:
        return None
    return list(dict.fromkeys(model for spec in specs for model in published_table(spec.published).index))


def paper_rows(stem: str) -> list[str] | None:
    """The rows (the paper's model names) of the paper's table that our table `stem` (a file of
    results/<run>/tables/ without suffix) reproduces, or None where the paper has no such table.

    A table that holds published tables has their rows (f1_2shot_en-x: Table 6a's and Table 10a's). One the
    paper does not print takes those of the printed table of its kind: a summary table Table 2's (the paper's
    only summary, 2-shot), an EM or F1 table those of the other metric in the same setting (em_2shot_en-x:
    Table 6a's), an error table of the paper's error setting (2-shot en-x) Table 7's. Any other table
    (x-y, a shots setting or error setting the paper does not report) is None."""
    rows = _published_rows(f"{stem}.csv")
    if rows is not None:
        return rows
    if re.fullmatch(r"summary_\d+shot", stem):
        return _published_rows("summary_2shot.csv")
    found = re.fullmatch(r"(f1|em)_(\d+shot_(?:en-x|x-x))", stem)
    if found:
        return _published_rows(f"{'em' if found[1] == 'f1' else 'f1'}_{found[2]}.csv")
    found = re.fullmatch(r"(?:undecided|blank_agreement)_(\d+shot_(?:en-x|x-x))", stem)
    if found:
        return _published_rows(f"language_error_{found[1]}.csv")
    return None


def run_paper_rows(models) -> Callable[[str], set[str] | None]:
    """For xmrc.tables.write_rows: table stem -> the names of the run's rows that are the paper's rows of
    that table (None: the paper has no such table). `models` are registry entries (xmrc.config.Model): a row
    is the paper's when the paper_name of the model it names (by its display name) is one of paper_rows(stem);
    a row already named as in the paper (e.g. the paper's own numbers) is too."""
    names = {model.name: model.paper_name for model in models if model.paper_name}

    def rows(stem: str) -> set[str] | None:
        paper = paper_rows(stem)
        if paper is None:
            return None
        return {name for name, paper_name in names.items() if paper_name in paper} | set(paper)

    return rows


def published_table(stem: str) -> pd.DataFrame:
    """One packaged table, indexed by the paper's model name; lost cells (Table 3) are NaN."""
    path = resources.files("xmrc").joinpath(f"{RESOURCE_DIR}/{stem}.csv")
    if not path.is_file():
        raise XmrcError(f"the package lacks the paper's table {RESOURCE_DIR}/{stem}.csv (reinstall xmrc)")
    with path.open(encoding="utf-8") as handle:
        return pd.read_csv(handle).set_index("model")


def published_cells(spec: PaperTable) -> int:
    """How many numbers the paper prints for this part of its table."""
    table = published_table(spec.published)
    return int(table[list(spec.columns or table.columns)].notna().sum().sum())
