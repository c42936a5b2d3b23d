"""Selecting W: the wrong answers of one shots setting and scenario, in each model's chosen format."""

import pandas as pd
import pytest

from xmrc.errors.wrong import chosen_formats, scored_generations, select
from xmrc.exceptions import XmrcError


def generations(
    models=("A", "B"),
    formats=("v1", "v2"),
    directions=(("en", "en"), ("en", "de"), ("de", "de")),
    ids=("i1", "i2"),
    shots=2,
):
    rows = []
    for m in models:
        for f in formats:
            for c, q in directions:
                for i in ids:
                    rows.append(
                        {
                            "model": m,
                            "shots": shots,
                            "prompt_format": f,
                            "id": i,
                            "context_lang": c,
                            "question_lang": q,
                            "answer_lang": c,
                            "gold": "Paris",
                            "raw_output": f"Answer: {i}{f}",
                            "prediction": "" if i == "i2" else f"{i}{f}",
                        }
                    )
    return pd.DataFrame(rows)


def scores_for(gens, em):
    """em(row) -> 0/1."""
    out = gens[["model", "shots", "prompt_format", "context_lang", "question_lang", "id"]].copy()
    out["em"] = [float(em(r)) for r in gens.itertuples()]
    out["f1"] = out["em"] * 0.5 + 0.25
    return out


QUESTIONS = pd.DataFrame(
    [{"id": i, "lang": lang, "question": f"{i}?{lang}"} for i in ("i1", "i2") for lang in ("en", "de")]
)


def test_wrong_answers_are_the_em_zero_items_of_the_scenario_and_format():
    gens = generations()
    # i1 is right, i2 wrong, except model B's en-de in v2 where both are right
    scores = scores_for(
        gens,
        lambda r: (
            r.id == "i1"
            or (r.model == "B" and r.question_lang == "de" and r.context_lang == "en" and r.prompt_format == "v2")
        ),
    )
    scored = scored_generations(gens, scores, QUESTIONS)
    wrong, counts = select(scored, 2, "en-x", {"A": "v1", "B": "v2"})
    assert set(zip(wrong["model"], wrong["prompt_format"])) == {("A", "v1"), ("B", "v2")}
    assert set(zip(wrong["context_lang"], wrong["question_lang"])) == {("en", "en"), ("en", "de")}
    assert len(wrong) == 3 and set(wrong["id"]) == {"i2"}
    assert wrong["rule_blank"].all()
    assert wrong.loc[wrong["question_lang"] == "de", "question"].iloc[0] == "i2?de"
    b_en_de = counts[(counts["model"] == "B") & (counts["question_lang"] == "de")]
    assert b_en_de[["n_items", "n_wrong"]].values.tolist() == [[2, 0]]  # empty W kept in the counts
    assert len(counts) == 4


def test_threshold_on_f1_and_one_format_for_all():
    gens = generations(models=("A",))
    scored = scored_generations(gens, scores_for(gens, lambda r: r.id == "i1"), QUESTIONS)
    wrong, _ = select(scored, 2, "x-x", "v2", metric="f1", max_score=0.75)  # every f1 (0.25, 0.75) qualifies
    assert len(wrong) == 2 and set(wrong["prompt_format"]) == {"v2"}
    assert set(wrong["context_lang"]) == {"de"}


def test_chosen_format_is_the_better_mean_f1():
    scores = pd.DataFrame(
        [
            {
                "model": m,
                "shots": 2,
                "prompt_format": f,
                "context_lang": "en",
                "question_lang": "de",
                "n": 1,
                "em": 0.0,
                "f1": f1,
            }
            for m, f, f1 in [("A", "v1", 50), ("A", "v2", 60), ("B", "v1", 70), ("B", "v2", 10)]
        ]
    )
    assert chosen_formats(scores, 2) == {"A": "v2", "B": "v1"}


def test_missing_score_or_question_is_a_one_line_error():
    gens = generations(models=("A",))
    scores = scores_for(gens, lambda r: True)
    with pytest.raises(XmrcError, match="no score for item 'i2'"):
        scored_generations(gens, scores[scores["id"] != "i2"], QUESTIONS)
    with pytest.raises(XmrcError, match="no de question for item"):
        scored_generations(gens, scores, QUESTIONS[QUESTIONS["lang"] == "en"])


def test_model_without_chosen_format_or_setting_is_an_error():
    gens = generations()
    scored = scored_generations(gens, scores_for(gens, lambda r: False), QUESTIONS)
    with pytest.raises(XmrcError, match="no chosen prompt format for model"):
        select(scored, 2, "en-x", {"A": "v1"})
    with pytest.raises(XmrcError, match="no generations for 0-shot"):
        select(scored, 0, "en-x", "v1")


def test_chosen_format_per_model_is_the_same_at_every_shots_setting():
    # A: v2 ahead at 2-shot by 10, v1 ahead at 0-shot by 30: one format for both settings, v1
    rows = [(2, "v1", 50), (2, "v2", 60), (0, "v1", 70), (0, "v2", 40)]
    scores = pd.DataFrame(
        [
            {"model": "A", "shots": s, "prompt_format": f, "context_lang": "en", "question_lang": "de"}
            | {"n": 1, "em": 0.0, "f1": f1}
            for s, f, f1 in rows
        ]
    )
    assert chosen_formats(scores, 2) == {"A": "v2"}
    assert chosen_formats(scores, 2, choice="per_model") == chosen_formats(scores, 0, choice="per_model") == {"A": "v1"}
