import numpy as np
import pandas as pd
import pytest

from xmrc.analysis.layers.mrd import (
    group_mrd_table,
    major_relevance_depth,
    major_relevance_depths,
    mean_part_mrd,
    part_mrds,
)


def test_mrd_hand_computed():
    # totals 20: 95% = 19; cumulative 1, 3, 19, 20 -> layer 3
    assert major_relevance_depth([1, 2, 16, 1]) == 3
    # cumulative 10, 18, 19 of 20: exactly 95% at layer 3
    assert major_relevance_depth([10, 8, 1, 1]) == 3
    # all relevance in the first layer
    assert major_relevance_depth([5, 0, 0, 0]) == 1
    # all in the last
    assert major_relevance_depth([0, 0, 0, 7]) == 4
    assert major_relevance_depth([3.0]) == 1


def test_mrd_exact_threshold_survives_rounding():
    # 0.95 and 0.05 in floating point: cumulative 0.95 must count as reaching 95% of 1.0
    assert major_relevance_depth([0.95, 0.05]) == 1
    assert major_relevance_depth([0.1] * 19 + [0.1]) == 19  # 1.9 of 2.0 after 19 layers


def test_mrd_threshold_parameter():
    assert major_relevance_depth([1, 1, 1, 1], threshold=0.5) == 2
    assert major_relevance_depth([1, 1, 1, 1]) == 4


def test_vectorised_matches_scalar():
    rng = np.random.default_rng(0)
    relevance = rng.random((31, 50))
    depths = major_relevance_depths(relevance)
    assert depths.tolist() == [major_relevance_depth(relevance[:, t]) for t in range(50)]
    assert depths.min() >= 1 and depths.max() <= 31


def test_mrd_rejects_bad_shapes():
    with pytest.raises(ValueError, match="one value per layer"):
        major_relevance_depth(np.ones((3, 2)))
    with pytest.raises(ValueError, match="at least one layer"):
        major_relevance_depths(np.ones((0, 2)))


def test_part_mrd_is_max_over_part_tokens():
    # token MRDs: 1, 2, 3 (columns), parts: question = tokens 0,1; context = token 2; task = none
    relevance = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    masks = {
        "question": np.array([True, True, False]),
        "context": np.array([False, False, True]),
        "task_description": np.zeros(3, dtype=bool),
    }
    assert part_mrds(relevance, masks) == {"question": 2, "context": 3, "task_description": None}


def test_mean_over_samples_and_groups():
    base = dict(model="m", shots=2, prompt_format="v2", question_lang="de")
    rows = [
        dict(base, id="a", part="question", mrd=2.0),
        dict(base, id="b", part="question", mrd=4.0),
        dict(base, id="a", part="context", mrd=10.0),
        dict(base, id="b", part="context", mrd=np.nan),
    ]
    relevance = pd.DataFrame(rows).assign(layers=31)
    members = pd.DataFrame(
        [
            dict(model="m", model_name="M", shots=2, prompt_format="v2", group=g, id=i, fallback=False)
            for g, i in [("balanced", "a"), ("balanced", "b"), ("en-superior", "b")]
        ]
    )
    table = group_mrd_table(relevance, members).set_index(["group", "part"])
    assert table.loc[("balanced", "question"), "mean_mrd"] == 3.0
    assert table.loc[("balanced", "question"), "n"] == 2
    assert table.loc[("balanced", "context"), "mean_mrd"] == 10.0  # the absent part of b is not a zero
    assert table.loc[("en-superior", "question"), "mean_mrd"] == 4.0
    assert ("en-superior", "context") not in table.index
    assert set(table["layers"]) == {31}
    plain = mean_part_mrd(relevance.assign(group="all"))
    assert plain.set_index("part").loc["question", "mean_mrd"] == 3.0
