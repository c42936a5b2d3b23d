"""Base-vs-tuned comparison: same items, better format per model, per-language deltas, figure."""

import pandas as pd
import pytest

from helpers import PUBLISHED_TABLES
from xmrc import LANGUAGES
from xmrc.exceptions import XmrcError
from xmrc.finetune import compare


def items(model, ids, f1_by_format, directions=(("en", "en"), ("en", "de"), ("de", "de"))):
    rows = []
    for fmt, f1 in f1_by_format.items():
        for context, question in directions:
            for item in ids:
                rows.append(
                    {
                        "model": model,
                        "shots": 2,
                        "prompt_format": fmt,
                        "context_lang": context,
                        "question_lang": question,
                        "id": item,
                        "em": 0.0,
                        "f1": f1,
                    }
                )
    return pd.DataFrame(rows)


def test_base_is_restricted_to_the_tuned_models_items():
    base = pd.concat(
        [items("Base", ["a", "b"], {"v1": 0.2, "v2": 0.4}), items("Base", ["c", "d"], {"v1": 1.0, "v2": 1.0})]
    )
    tuned = items("Tuned", ["a", "b"], {"v1": 0.9, "v2": 0.5})
    tables = compare.pair_tables(pd.concat([base, tuned]), "Base", "Tuned", 2)
    summary = tables["summary"]
    assert list(summary.index) == ["Base", "Tuned"] and list(summary["role"]) == ["base", "tuned"]
    assert list(summary["n_items"]) == [2, 2]
    # Base on a, b only (0.4 with v2, not the 1.0 of c, d); each with its better format.
    assert summary.loc["Base", "en-en"] == pytest.approx(40.0) and summary.loc["Base", "prompt_format"] == "v2"
    assert summary.loc["Tuned", "en-en"] == pytest.approx(90.0) and summary.loc["Tuned", "prompt_format"] == "v1"
    en_x = tables["en-x"]
    assert list(en_x.index) == ["Base", "Tuned", "\u0394 Tuned"]
    assert en_x.loc["\u0394 Tuned", "en-de"] == pytest.approx(50.0)
    assert list(tables["x-x"].columns) == ["de-de"]


def test_items_are_shared_per_shots_setting():
    # 0-shot also scores the 2-shot demonstration item "c": it is shared at 0-shot, not at 2-shot
    zero = pd.concat([items("Base", ["a", "c"], {"v1": 0.0}), items("Tuned", ["a", "c"], {"v1": 0.0})]).assign(shots=0)
    two = pd.concat([items("Base", ["a", "c"], {"v1": 0.0}), items("Tuned", ["a"], {"v1": 0.0})])
    both = pd.concat([zero, two])
    assert list(compare.pair_tables(both, "Base", "Tuned", 0)["summary"]["n_items"]) == [2, 2]
    assert list(compare.pair_tables(both, "Base", "Tuned", 2)["summary"]["n_items"]) == [1, 1]
    with pytest.raises(XmrcError, match="no 0-shot rows for model 'Tuned'"):
        compare.pair_tables(pd.concat([zero[zero["model"] == "Base"], two]), "Base", "Tuned", 0)


def test_pairs_without_shared_items_are_an_error():
    frame = pd.concat([items("Base", ["a"], {"v1": 0.1}), items("Tuned", ["b"], {"v1": 0.1})])
    with pytest.raises(XmrcError, match="share no scored item"):
        compare.pair_tables(frame, "Base", "Tuned", 2)
    with pytest.raises(XmrcError, match="no rows for model 'Other'"):
        compare.pair_tables(frame, "Base", "Other", 2)


def test_comparison_files_and_figure(tmp_path):
    first = pd.concat([items("Base", ["a", "b"], {"v1": 0.2}), items("Tuned", ["a", "b"], {"v1": 0.6})])
    second = pd.concat([items("Base", ["a"], {"v1": 0.2}), items("Other", ["a"], {"v1": 0.1})])
    paths = compare.write_comparison([("Base", "Tuned", first), ("Base", "Other", second)], [2], tmp_path)
    assert sorted(p.name for p in paths) == sorted(
        f"{stem}.{ext}"
        for stem in ("comparison_2shot", "comparison_f1_2shot_en-x", "comparison_f1_2shot_x-x")
        for ext in ("csv", "md")
    )
    summary = pd.read_csv(tmp_path / "comparison_2shot.csv")
    assert list(summary["pair"]) == ["Tuned", "Tuned", "Other", "Other"]
    per_language = compare.read_per_language(tmp_path, 2)
    assert list(per_language["en-x"].index) == ["Base", "Tuned", "\u0394 Tuned", "Base", "Other", "\u0394 Other"]
    figure = compare.comparison_figure(per_language, tmp_path / "figure.png")
    assert figure.stat().st_size > 10_000


def test_per_language_tables_have_the_layout_of_the_papers_table_10():
    directions = [("en", x) for x in LANGUAGES] + [(x, x) for x in LANGUAGES if x != "en"]
    frame = pd.concat(
        [
            items("LLaMA-3.1-8B", ["a"], {"v1": 0.5}, directions),
            items("LLaMA-3.1-Tuned-8B", ["a"], {"v1": 0.7}, directions),
        ]
    )
    tables = compare.pair_tables(frame, "LLaMA-3.1-8B", "LLaMA-3.1-Tuned-8B", 2)
    for scenario, name in (("en-x", "table10a_2shot_f1_en-x_tuned.csv"), ("x-x", "table10b_2shot_f1_x-x_tuned.csv")):
        paper = pd.read_csv(PUBLISHED_TABLES / name, index_col="model")
        assert list(tables[scenario].columns) == list(paper.columns)
        assert set(paper.index) <= set(tables[scenario].index)


def test_format_choice_per_model_shows_each_model_in_one_format_at_every_shots_setting():
    # Base: v1 ahead at 0-shot by a little, v2 at 2-shot by a lot; Tuned: v1 everywhere
    base = pd.concat(
        [
            items("Base", ["a", "b"], {"v1": 0.5, "v2": 0.4}).assign(shots=0),
            items("Base", ["a", "b"], {"v1": 0.1, "v2": 0.9}),
        ]
    )
    tuned = pd.concat([items("Tuned", ["a", "b"], {"v1": 0.6, "v2": 0.2}).assign(shots=s) for s in (0, 2)])
    both = pd.concat([base, tuned])
    assert compare.pair_tables(both, "Base", "Tuned", 0)["summary"]["prompt_format"].to_dict() == {
        "Base": "v1",
        "Tuned": "v1",
    }
    per_model = compare.pair_tables(both, "Base", "Tuned", 0, choice="per_model")
    assert per_model["summary"]["prompt_format"].to_dict() == {"Base": "v2", "Tuned": "v1"}
    assert per_model["summary"].loc["Base", "en-en"] == pytest.approx(40.0)
    assert per_model["summary"].loc["Base", "format_criterion"].endswith("averaged over 0-shot and 2-shot")
    assert per_model["en-x"].loc["\u0394 Tuned", "en-de"] == pytest.approx(20.0)
