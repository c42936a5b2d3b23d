import pandas as pd
import pytest

from xmrc.analysis.layers.groups import sample_groups
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
