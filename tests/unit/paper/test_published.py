"""Which rows each of our tables has in the paper (config key tables.paper_rows)."""

import pandas as pd

from helpers import PUBLISHED_TABLES, ROOT
from xmrc.config import Registry
from xmrc.paper.published import paper_rows, run_paper_rows


def printed(name: str) -> list[str]:
    return list(pd.read_csv(PUBLISHED_TABLES / f"{name}.csv")["model"])


def test_a_table_has_the_rows_of_the_published_tables_it_holds():
    assert paper_rows("f1_0shot_en-x") == printed("table5b_0shot_f1_en-x")
    # Table 6a and Table 10a (the tuned model's row) are one file of ours
    assert paper_rows("f1_2shot_en-x") == printed("table6a_2shot_f1_en-x") + ["LLaMA-3.1-Tuned-8B"]
    assert paper_rows("summary_2shot") == printed("table2_2shot_summary")
    assert paper_rows("language_error_2shot_en-x") == printed("table7_2shot_language_error_en-x")
    assert paper_rows("error_summary_2shot_en-x") == printed("table2_2shot_summary")


def test_a_table_the_paper_does_not_print_takes_the_rows_of_its_kind_or_none():
    assert paper_rows("em_2shot_x-x") == paper_rows("f1_2shot_x-x")  # no 2-shot EM table: Table 6b's rows
    assert paper_rows("summary_0shot") == printed("table2_2shot_summary")
    assert (
        paper_rows("undecided_2shot_en-x")
        == paper_rows("blank_agreement_2shot_en-x")
        == paper_rows("language_error_2shot_en-x")
    )
    for stem in ("f1_2shot_x-y", "f1_4shot_en-x", "gibberish_2shot_x-x", "error_rates_2shot_en-x"):
        assert paper_rows(stem) is None, stem


def test_the_runs_rows_are_matched_by_paper_name():
    models = Registry.load(ROOT / "config/models.yaml").models
    rows = run_paper_rows(models.values())
    assert rows("f1_2shot_x-y") is None
    ours = lambda stem: {m.key for m in models.values() if m.name in rows(stem)}  # noqa: E731
    two_shot, zero_shot = ours("f1_2shot_en-x"), ours("f1_0shot_en-x")
    assert {"llama-3.1-tuned-8b", "gpt-4o"} <= two_shot and not {"deepseek-v3", "llama-2-chat-7b"} & two_shot
    assert "llama-2-chat-7b" in zero_shot and "llama-3.1-tuned-8b" not in zero_shot
    assert "tiny-llama-chat" not in ours("summary_2shot") | zero_shot | ours("blank_2shot_en-x")
    # a row named as in the paper (the paper's own numbers) is the paper's too
    assert "GPT-4o" in run_paper_rows([])("summary_2shot")
