from types import SimpleNamespace

import pandas as pd
import pytest

from xmrc.analysis.layers.groups import chosen_formats, sample_groups, sample_models, setting_format
from xmrc.exceptions import XmrcError

LANGS = ["en", "de", "zh"]


def items(scores: dict[str, dict[str, float]], model="Model-A", shots=2, fmt="v2"):
    rows = [
        dict(model=model, shots=shots, prompt_format=fmt, context_lang="en", question_lang=lang, id=item, em=0.0, f1=f1)
        for item, by_lang in scores.items()
        for lang, f1 in by_lang.items()
    ]
    # x-x rows must not count
    rows += [
        dict(
            model=model, shots=shots, prompt_format=fmt, context_lang="de", question_lang="de", id=item, em=0.0, f1=0.0
        )
        for item in scores
    ]
    return pd.DataFrame(rows)


SCORES = {
    "bal1": {"en": 1.0, "de": 0.6, "zh": 0.9},
    "bal2": {"en": 0.8, "de": 0.8, "zh": 0.51},
    "edge": {"en": 1.0, "de": 0.5, "zh": 1.0},  # 0.5 is not above 0.5: not balanced; margin 0.25: not en-sup
    "sup1": {"en": 1.0, "de": 0.0, "zh": 0.2},  # margin 0.9
    "sup2": {"en": 0.9, "de": 0.3, "zh": 0.5},  # margin exactly 0.5: not more than 0.5
    "sup3": {"en": 0.7, "de": 0.1, "zh": 0.0},  # margin 0.65
}


def test_groups_follow_definitions():
    members, sizes = sample_groups(items(SCORES), "model-a", "Model-A", 2, "v2", LANGS)
    by_group = members.groupby("group")["id"].apply(list).to_dict()
    assert by_group == {"balanced": ["bal1", "bal2"], "en-superior": ["sup1", "sup3"]}
    assert not members["fallback"].any()
    assert sizes.set_index("group")["eligible"].to_dict() == {"balanced": 2, "en-superior": 2}
    assert set(members["model"]) == {"model-a"} and set(members["model_name"]) == {"Model-A"}


def test_cap_is_seeded_and_keeps_item_order():
    many = {f"i{n:02d}": {"en": 1.0, "de": 0.9, "zh": 0.9} for n in range(30)}
    first, sizes = sample_groups(items(many), "m", "Model-A", 2, "v2", LANGS, groups=["balanced"], cap=5, seed=1)
    again, _ = sample_groups(items(many), "m", "Model-A", 2, "v2", LANGS, groups=["balanced"], cap=5, seed=1)
    other, _ = sample_groups(items(many), "m", "Model-A", 2, "v2", LANGS, groups=["balanced"], cap=5, seed=2)
    assert first["id"].tolist() == again["id"].tolist() == sorted(first["id"])
    assert len(first) == 5 and first["id"].tolist() != other["id"].tolist()
    assert sizes.iloc[0][["eligible", "selected"]].tolist() == [30, 5]


def test_empty_group_falls_back_to_all_items():
    zeros = {f"i{n}": {"en": 0.0, "de": 0.0, "zh": 0.0} for n in range(4)}
    members, sizes = sample_groups(items(zeros), "m", "Model-A", 2, "v2", LANGS, cap=3)
    assert members["fallback"].all()
    assert sizes["eligible"].tolist() == [0, 0] and sizes["selected"].tolist() == [3, 3]


def test_items_missing_a_direction_are_dropped():
    scores = dict(SCORES)
    table = items(scores)
    table = table[~((table["id"] == "bal1") & (table["question_lang"] == "zh"))]
    members, _ = sample_groups(table, "m", "Model-A", 2, "v2", LANGS)
    assert "bal1" not in set(members["id"])


def test_unknown_model_or_setting_is_one_line_error():
    with pytest.raises(XmrcError, match="no en-x rows for model 'Other'"):
        sample_groups(items(SCORES), "o", "Other", 2, "v2", LANGS)
    with pytest.raises(XmrcError, match="0-shot v2"):
        sample_groups(items(SCORES), "m", "Model-A", 0, "v2", LANGS)


def two_formats():
    """Item scores of one model in v1 and v2: v1 is better over en-x (x != en), v2 over all directions (its
    en-en and x-x are much better)."""
    f1 = {("v1", "en"): 0.2, ("v1", "de"): 0.6, ("v1", "zh"): 0.6, ("v2", "en"): 1.0, ("v2", "de"): 0.5}
    f1[("v2", "zh")] = 0.5
    rows = [
        dict(
            model="Model-A", shots=2, prompt_format=fmt, context_lang="en", question_lang=lang, id=f"i{n}", em=0.0, f1=v
        )
        for (fmt, lang), v in f1.items()
        for n in range(3)
    ]
    rows += [
        dict(
            model="Model-A", shots=2, prompt_format=fmt, context_lang="de", question_lang="de", id=f"i{n}", em=0.0, f1=v
        )
        for fmt, v in (("v1", 0.0), ("v2", 1.0))
        for n in range(3)
    ]
    return pd.DataFrame(rows)


def test_best_is_the_format_of_the_better_criterion_as_in_the_summary_table():
    from xmrc import tables

    scores = two_formats()
    assert chosen_formats(scores, 2, "en-x") == {"Model-A": "v1"}
    assert chosen_formats(scores, 2, "all") == {"Model-A": "v2"}
    for criterion in ("en-x", "all"):  # the summary table reports the same format
        summary = tables.summary_table(tables.direction_scores(scores), 2, criterion)
        assert chosen_formats(scores, 2, criterion) == summary["prompt_format"].to_dict()


def test_best_and_a_named_format_sample_each_format_once_and_mark_the_chosen_one():
    model = SimpleNamespace(key="model-a", name="Model-A")
    scores = two_formats()
    members, sizes = sample_models(scores, [model], 2, ["best", "v1"], LANGS, chosen={"Model-A": "v2"})
    assert sizes.groupby("prompt_format")["chosen"].unique().map(list).to_dict() == {"v1": [False], "v2": [True]}
    assert setting_format(members, "model-a", 2, "best", "groups.parquet") == "v2"
    assert setting_format(members, "model-a", 2, "v1", "groups.parquet") == "v1"
    members, sizes = sample_models(scores, [model], 2, ["best", "v1"], LANGS, chosen={"Model-A": "v1"})
    assert set(sizes["prompt_format"]) == {"v1"} and sizes["chosen"].all() and len(sizes) == 2  # 2 groups, once
    assert setting_format(sizes, "model-a", 2, "best", "group_sizes.csv") == "v1"
    with pytest.raises(XmrcError, match="no chosen format for model 'model-a'"):
        setting_format(members.assign(chosen=False), "model-a", 2, "best", "groups.parquet")
