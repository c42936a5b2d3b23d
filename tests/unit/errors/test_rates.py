"""Error-rate formulas on hand-built cases, and Table 2 (right half) from the paper's Tables 7 and 8."""

import numpy as np
import pandas as pd
import pytest

from helpers import PUBLISHED_TABLES
from xmrc.errors import KEYS
from xmrc.errors.figure import type_shares
from xmrc.errors.rates import (
    blank_agreement,
    direction_rates,
    error_rates,
    item_types,
    summary,
    table_names,
    wide_table,
    write_error_tables,
)
from xmrc.exceptions import XmrcError


def counts_frame(rows):
    """rows: (model, context_lang, question_lang, n_items, n_wrong)."""
    return pd.DataFrame(
        [
            {
                "model": m,
                "shots": 2,
                "prompt_format": "v1",
                "context_lang": c,
                "question_lang": q,
                "n_items": n,
                "n_wrong": w,
            }
            for m, c, q, n, w in rows
        ]
    )


def items_frame(rows):
    """rows: (model, context_lang, question_lang, id, prediction_lang, language_error, verdict, rule_blank)."""
    return pd.DataFrame(
        [
            {
                "model": m,
                "shots": 2,
                "prompt_format": "v1",
                "context_lang": c,
                "question_lang": q,
                "id": i,
                "prediction_lang": p,
                "intruding_lang": q if q != c else None,
                "language_error": e,
                "verdict": v,
                "rule_blank": b,
            }
            for m, c, q, i, p, e, v, b in rows
        ]
    )


def rate(rates, model, c, q, kind):
    row = rates[(rates["model"] == model) & (rates["context_lang"] == c) & (rates["question_lang"] == q)]
    assert len(row) == 1
    return row[kind].iloc[0]


@pytest.fixture
def hand_built():
    counts = counts_frame([("M", "en", "en", 10, 2), ("M", "en", "de", 10, 4), ("M", "en", "zh", 10, 0)])
    items = items_frame(
        [
            ("M", "en", "en", "a", "en", False, 0, False),
            ("M", "en", "en", "b", "und", False, 1, True),
            ("M", "en", "de", "a", "de", True, 0, False),  # language error
            ("M", "en", "de", "b", "und", False, 2, False),  # undecidable prediction, gibberish
            ("M", "en", "de", "c", "en", False, 3, False),  # refusal
            ("M", "en", "de", "d", "und", False, 1, True),  # blank by rule and judge
        ]
    )
    return counts, items


def test_rates_are_shares_of_wrong_answers(hand_built):
    rates = direction_rates(*hand_built)
    assert rate(rates, "M", "en", "de", "language_error") == 25.0
    assert rate(rates, "M", "en", "de", "gibberish") == 25.0
    assert rate(rates, "M", "en", "de", "refusal") == 25.0
    assert rate(rates, "M", "en", "de", "blank") == 25.0
    assert rate(rates, "M", "en", "de", "generation_failure") == 75.0
    assert rate(rates, "M", "en", "de", "undecided") == 50.0
    assert rate(rates, "M", "en", "en", "blank") == 50.0
    assert rate(rates, "M", "en", "en", "generation_failure") == 50.0


def test_undecidable_prediction_is_never_a_language_error(hand_built):
    rates = direction_rates(*hand_built)
    assert rate(rates, "M", "en", "de", "n_undecided") == 2
    assert rate(rates, "M", "en", "de", "n_language_error") == 1


def test_empty_w_gives_undefined_rates_not_zero(hand_built):
    rates = direction_rates(*hand_built)
    assert rate(rates, "M", "en", "zh", "n_wrong") == 0
    for kind in ("language_error", "generation_failure", "gibberish", "refusal", "blank", "undecided"):
        assert np.isnan(rate(rates, "M", "en", "zh", kind)), kind


def test_language_error_is_undefined_for_en_en(hand_built):
    rates = direction_rates(*hand_built)
    assert np.isnan(rate(rates, "M", "en", "en", "language_error"))
    assert "en-en" not in wide_table(rates, "language_error", "en-x").columns
    assert "en-en" in wide_table(rates, "generation_failure", "en-x").columns


def test_invalid_verdict_is_its_own_category():
    counts = counts_frame([("M", "en", "de", 4, 2)])
    items = items_frame([("M", "en", "de", "a", "en", False, -1, False), ("M", "en", "de", "b", "en", False, 2, False)])
    rates = direction_rates(counts, items)
    assert rate(rates, "M", "en", "de", "invalid_verdict") == 50.0
    assert rate(rates, "M", "en", "de", "generation_failure") == 50.0


def test_summary_reproduces_table2_right_half_from_tables_7_and_8():
    table7 = pd.read_csv(PUBLISHED_TABLES / "table7_2shot_language_error_en-x.csv", index_col="model")
    table8 = pd.read_csv(PUBLISHED_TABLES / "table8_2shot_generation_failure_en-x.csv", index_col="model")
    table2 = pd.read_csv(PUBLISHED_TABLES / "table2_2shot_summary.csv", index_col="model")
    ours = summary(table7, table8)
    common = ours.index.intersection(table2.index)  # Tables 7/8 list 17 models, not quite Table 2's 18
    assert len(common) == 16
    ours = ours.loc[common]
    for ours_column, paper_column in [
        ("mean language", "mean language"),
        ("mean generation", "mean generation"),
        ("en-en generation", "en-en generation"),
    ]:
        np.testing.assert_allclose(ours[ours_column], table2.loc[ours.index, paper_column], atol=0.011)


def test_generation_failure_is_the_sum_of_its_parts_as_in_tables_8_and_9():
    parts = [
        pd.read_csv(PUBLISHED_TABLES / f"table9{x}.csv", index_col="model")
        for x in ("a_2shot_gibberish_en-x", "b_2shot_refusal_en-x", "c_2shot_blank_en-x")
    ]
    table8 = pd.read_csv(PUBLISHED_TABLES / "table8_2shot_generation_failure_en-x.csv", index_col="model")
    np.testing.assert_allclose(sum(parts), table8, atol=0.021)
    counts = counts_frame([("M", "en", "de", 5, 5)])
    items = items_frame([("M", "en", "de", str(i), "en", False, v, False) for i, v in enumerate([0, 1, 2, 3, 2])])
    rates = direction_rates(counts, items)
    parts = sum(rate(rates, "M", "en", "de", k) for k in ("gibberish", "refusal", "blank"))
    assert parts == rate(rates, "M", "en", "de", "generation_failure") == 80.0


def test_blank_agreement_counts_rule_and_judge(hand_built):
    counts, items = hand_built
    items.loc[items["id"] == "c", "rule_blank"] = True  # rule says blank, judge says refusal
    table = blank_agreement(direction_rates(counts, items))
    row = table.loc["M"]
    assert (row["wrong"], row["rule blank"], row["judge blank"], row["both"]) == (6, 3, 2, 2)
    assert row["agreement"] == pytest.approx(100 * 5 / 6)


def test_typed_items_need_every_wrong_answer_judged(hand_built):
    _, items = hand_built
    wrong = items[KEYS + ["rule_blank"]]
    language = items[KEYS + ["prediction_lang", "intruding_lang", "language_error"]]
    judge = items[KEYS + ["verdict"]].iloc[:-1]
    with pytest.raises(XmrcError, match="judge table lacks wrong answer 'd'"):
        item_types(wrong, language, judge)


def test_write_error_tables_writes_every_named_file(hand_built, tmp_path):
    counts, items = hand_built
    rates = error_rates(
        counts,
        items[KEYS + ["rule_blank"]],
        items[KEYS + ["prediction_lang", "intruding_lang", "language_error"]],
        items[KEYS + ["verdict"]],
        "en-x",
    )
    paths = write_error_tables(rates, 2, "en-x", tmp_path)
    assert sorted(p.name for p in paths) == sorted(table_names(2, "en-x"))
    summary_md = (tmp_path / "error_summary_2shot_en-x.md").read_text()
    # mean language over en-de (25) and en-zh (undefined): 25; mean generation: 75; en-en generation: 50
    assert "| M | 25.00 | 75.00 | 50.00 | v1 |" in summary_md
    table7 = pd.read_csv(tmp_path / "language_error_2shot_en-x.csv", index_col="model")
    assert list(table7.columns) == ["en-de", "en-zh"] and np.isnan(table7.loc["M", "en-zh"])


def test_models_not_in_summary_keep_their_per_direction_rows(hand_built, tmp_path):
    counts, items = hand_built
    rates = error_rates(
        counts,
        items[KEYS + ["rule_blank"]],
        items[KEYS + ["prediction_lang", "intruding_lang", "language_error"]],
        items[KEYS + ["verdict"]],
        "en-x",
    )
    write_error_tables(rates, 2, "en-x", tmp_path, not_in_summary=["M"])
    assert pd.read_csv(tmp_path / "error_summary_2shot_en-x.csv").empty  # Table 2 (right): main list only
    assert list(pd.read_csv(tmp_path / "language_error_2shot_en-x.csv")["model"]) == ["M"]  # Table 7 keeps it


def test_figure_shares_are_exclusive_and_sum_to_100(hand_built):
    _, items = hand_built
    shares = type_shares(items)
    # en-en: other 50, blank 50; en-de: language, gibberish, refusal, blank 25 each -> mean per direction
    assert shares.loc["M"].to_dict() == pytest.approx(
        {"blank": 37.5, "refusal": 12.5, "gibberish": 12.5, "language error": 12.5, "other wrong": 25.0}
    )
    assert shares.sum(axis=1).iloc[0] == pytest.approx(100.0)


def test_paper_rows_split_the_error_tables_as_the_workflow_names_them(hand_built, tmp_path):
    counts, items = hand_built
    counts = pd.concat([counts, counts.assign(model="X")], ignore_index=True)
    items = pd.concat([items, items.assign(model="X")], ignore_index=True)
    rates = error_rates(
        counts,
        items[KEYS + ["rule_blank"]],
        items[KEYS + ["prediction_lang", "intruding_lang", "language_error"]],
        items[KEYS + ["verdict"]],
        "en-x",
    )
    # M is a row of the paper's tables; X (say, a model of Table 2 only) is not; X is also an extra model
    paths = write_error_tables(rates, 2, "en-x", tmp_path, not_in_summary=["X"], rows=lambda stem: {"M"})
    assert sorted(p.name for p in paths) == sorted(table_names(2, "en-x", with_paper_rows=True))
    assert "language_error_2shot_en-x_extra.csv" in table_names(2, "en-x", with_paper_rows=True)
    assert not any("_extra" in name for name in table_names(2, "x-x", with_paper_rows=True))  # no paper table
    for stem in ("language_error", "blank", "error_summary", "blank_agreement"):
        assert list(pd.read_csv(tmp_path / f"{stem}_2shot_en-x.csv")["model"]) == ["M"], stem
        assert list(pd.read_csv(tmp_path / f"{stem}_2shot_en-x_extra.csv")["model"]) == ["X"], stem
