"""A run's main tables as items of the Snakemake HTML report: which tables, where they go (the same
category/subcategory as the stage's figures), and the HTML page of one table.

The report shows images and HTML pages itself (CSV would only be a download), so each table listed in
`REPORT_TABLES` becomes `results/<run>/report/<stem>.html`, where `<stem>` is its path under
`results/<run>/tables/` without `.csv`. Captions: workflow/report/table_<caption>.rst. A table's `_extra` part
(config key tables.paper_rows: its rows beyond the paper's; xmrc.tables.write_rows) goes beside it.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from xmrc.exceptions import XmrcError
from xmrc.io import read_table, write_text
from xmrc.paper.published import paper_rows
from xmrc.tables import EXTRA_SUFFIX


@dataclass(frozen=True)
class ReportTable:
    pattern: str  # the table's stem (path under tables/ without .csv); named groups fill the texts below
    category: str
    subcategory: str | None
    title: str
    caption: str  # workflow/report/table_<caption>.rst

    def match(self, stem: str) -> dict[str, str] | None:
        found = re.fullmatch(self.pattern, stem)
        return found.groupdict() if found else None


SHOTS = r"(?P<shots>\d+)"
SCENARIO = r"(?P<scenario>en-x|x-x|x-y)"
REPORT_TABLES = (
    ReportTable(rf"summary_{SHOTS}shot", "Scores", "{shots}-shot", "summary (Table 2)", "scores"),
    ReportTable(
        rf"(?P<metric>f1|em)_{SHOTS}shot_{SCENARIO}",
        "Scores",
        "{shots}-shot",
        "{metric} per direction, {scenario} (Tables 5, 6)",
        "scores",
    ),
    ReportTable(r"paper_comparison_summary", "Paper comparison", None, "per published table", "paper_comparison"),
    ReportTable(r"paper_comparison", "Paper comparison", None, "every compared cell", "paper_comparison"),
    ReportTable(
        r"error_summary_(?P<setting>\d+shot_(?:en-x|x-x))",
        "Errors",
        None,
        "summary (Table 2, right half), {setting}",
        "errors",
    ),
    ReportTable(
        r"(?P<kind>language_error|generation_failure|gibberish|refusal|blank)_"
        r"(?P<setting>\d+shot_(?:en-x|x-x))",
        "Errors",
        None,
        "{kind} rate per direction, {setting} (Tables 7-9)",
        "errors",
    ),
    ReportTable(r"oracle_summary", "Oracle", None, "oracle accuracy (Table 3)", "oracle"),
    ReportTable(
        r"oracle_(?P<kind>step|sequence)_en-x", "Oracle", None, "{kind} oracle accuracy per direction", "oracle"
    ),
    ReportTable(
        rf"finetune/comparison_{SHOTS}shot", "Finetuning", "{shots}-shot", "base vs tuned, summary", "finetune"
    ),
    ReportTable(
        rf"finetune/comparison_f1_{SHOTS}shot_{SCENARIO}",
        "Finetuning",
        "{shots}-shot",
        "base vs tuned, F1 per direction, {scenario} (Table 10)",
        "finetune",
    ),
)


def placement(stem: str) -> dict[str, str | None] | None:
    """Where the report shows table `stem` (category, subcategory, title, caption), or None: not a report table."""
    if stem.endswith(EXTRA_SUFFIX) and paper_rows(stem[: -len(EXTRA_SUFFIX)]) is not None:
        where = placement(stem[: -len(EXTRA_SUFFIX)])
        return where and {**where, "title": where["title"] + ", rows beyond the paper's"}
    for table in REPORT_TABLES:
        groups = table.match(stem)
        if groups is not None:
            groups = {key: value.upper() if key == "metric" else value for key, value in groups.items()}
            return {
                "category": table.category,
                "subcategory": table.subcategory.format(**groups) if table.subcategory else None,
                "title": table.title.format(**groups),
                "caption": table.caption,
            }
    return None


def report_stems(paths: list[str], tables_dir: str) -> list[str]:
    """The stems of the report tables among a run's outputs (CSV paths under tables_dir), in their order."""
    prefix = tables_dir.rstrip("/") + "/"
    stems = [path[len(prefix) : -len(".csv")] for path in paths if path.startswith(prefix) and path.endswith(".csv")]
    return list(dict.fromkeys(stem for stem in stems if placement(stem) is not None))


STYLE = """body{font-family:sans-serif;font-size:13px;margin:1em}
table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}"""


def table_page(frame: pd.DataFrame, title: str, source: str) -> str:
    """A standalone HTML page of one table (numbers with 2 decimals; empty cells stay empty)."""
    body = frame.to_html(index=False, na_rep="", float_format=lambda value: f"{value:.2f}", border=0)
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h3>{html.escape(title)}</h3>"
        f"<p>From <code>{html.escape(source)}</code>; {len(frame)} rows.</p>{body}</body></html>\n"
    )


def write_pages(tables_dir: str | Path, stems: list[str], out_dir: str | Path) -> list[Path]:
    """<out_dir>/<stem>.html for every stem (a table of tables_dir)."""
    paths = []
    for stem in stems:
        where = placement(stem)
        if where is None:
            raise XmrcError(f"{stem}: not a table the report shows (see xmrc.report_tables.REPORT_TABLES)")
        source = Path(tables_dir) / f"{stem}.csv"
        frame = read_table(source, keep_default_na=False, na_values=[""])
        page = table_page(frame, f"{where['category']}: {where['title']}", f"tables/{stem}.csv")
        paths.append(write_text(page, Path(out_dir) / f"{stem}.html"))
    return paths
