"""The main tables as report items: which tables, in which category, and their HTML pages."""

import pandas as pd
import pytest

from helpers.workflow import assert_one_line_error, xmrc
from xmrc.exceptions import XmrcError
from xmrc.report_tables import placement, report_stems, write_pages


def test_each_main_table_goes_beside_its_stages_figures():
    assert placement("summary_2shot") == {
        "category": "Scores",
        "subcategory": "2-shot",
        "title": "summary (Table 2)",
        "caption": "scores",
    }
    assert placement("em_0shot_x-x")["title"] == "EM per direction, x-x (Tables 5, 6)"
    assert (
        placement("paper_comparison")["category"]
        == placement("paper_comparison_summary")["category"]
        == "Paper comparison"
    )
    assert placement("gibberish_2shot_en-x")["category"] == "Errors"
    assert placement("error_summary_2shot_en-x")["category"] == "Errors"
    assert placement("oracle_step_en-x")["category"] == "Oracle"
    assert placement("finetune/comparison_f1_0shot_en-x")["subcategory"] == "0-shot"
    for other in (
        "direction_scores",
        "oracle_vs_f1",
        "blank_agreement_2shot_en-x",
        "undecided_2shot_en-x",
        "paper_comparison_extra",
        "summary_2shot_en-x",
    ):
        assert placement(other) is None, other


def test_report_stems_are_the_runs_main_tables_in_order():
    paths = [
        "results/r/tables/direction_scores.csv",
        "results/r/tables/summary_2shot.csv",
        "results/r/tables/summary_2shot.md",
        "results/r/tables/finetune/comparison_2shot.csv",
        "results/r/figures/means_2shot.png",
        "results/r/tables/oracle_summary.csv",
        "results/r/tables/summary_2shot.csv",
    ]
    assert report_stems(paths, "results/r/tables") == ["summary_2shot", "finetune/comparison_2shot", "oracle_summary"]


def test_a_page_holds_the_table_with_empty_cells_left_empty(tmp_path):
    (tmp_path / "tables/finetune").mkdir(parents=True)
    pd.DataFrame({"model": ["A", "B"], "en-en": [12.345, None]}).to_csv(
        tmp_path / "tables/summary_2shot.csv", index=False
    )
    pd.DataFrame({"model": ["A"], "pair": ["A"]}).to_csv(tmp_path / "tables/finetune/comparison_2shot.csv", index=False)
    pages = write_pages(tmp_path / "tables", ["summary_2shot", "finetune/comparison_2shot"], tmp_path / "report")
    assert pages == [tmp_path / "report/summary_2shot.html", tmp_path / "report/finetune/comparison_2shot.html"]
    page = pages[0].read_text()
    assert "<h3>Scores: summary (Table 2)</h3>" in page and "<td>12.35</td>" in page and "<td></td>" in page
    with pytest.raises(XmrcError, match="direction_scores: not a table the report shows"):
        write_pages(tmp_path / "tables", ["direction_scores"], tmp_path / "report")


def test_a_missing_table_is_one_line_naming_it(tmp_path):
    result = xmrc("report-tables", "--tables-dir", tmp_path, "--stems", "oracle_summary", "--out-dir", tmp_path / "r")
    assert_one_line_error(result, "oracle_summary.csv", "file not found")
