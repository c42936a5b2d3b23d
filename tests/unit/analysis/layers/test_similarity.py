import itertools

import numpy as np
import pandas as pd
import pytest

from xmrc.analysis.layers.similarity import mean_pairwise_cosine, similarity_ratio, similarity_ratios, similarity_table


def cos(a, b):
    return float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))


def test_similarity_ratio_hand_computed():
    english = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    other = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    # numerator: cos = 1, 1/sqrt2, 1/sqrt2; denominator over pairs of `other`: 1/sqrt2, 0, 1/sqrt2
    numerator = (1 + 2 / np.sqrt(2)) / 3
    denominator = (2 / np.sqrt(2)) / 3
    assert similarity_ratio(english, other) == pytest.approx(numerator / denominator)


def test_similarity_ratio_matches_loop_definition():
    rng = np.random.default_rng(1)
    english, other = rng.normal(size=(6, 5)), rng.normal(size=(6, 5)) + 1.0
    paired = np.mean([cos(e, x) for e, x in zip(english, other)])
    pairs = np.mean([cos(other[i], other[j]) for i, j in itertools.combinations(range(6), 2)])
    assert similarity_ratio(english, other) == pytest.approx(paired / pairs)
    # the paper's form: (K-1) * sum_k Sim(e_k, x_k) / (2 * sum_{i<j} Sim(x_i, x_j))
    k = 6
    paper = (
        (k - 1)
        * sum(cos(e, x) for e, x in zip(english, other))
        / (2 * sum(cos(other[i], other[j]) for i, j in itertools.combinations(range(k), 2)))
    )
    assert similarity_ratio(english, other) == pytest.approx(paper)


def test_scale_invariance_and_stacks():
    rng = np.random.default_rng(2)
    english, other = rng.normal(size=(4, 3)) + 0.5, rng.normal(size=(4, 3)) + 0.5
    assert similarity_ratio(3 * english, 0.5 * other) == pytest.approx(similarity_ratio(english, other))
    stack_e, stack_x = np.stack([english, other]), np.stack([other, english])
    assert similarity_ratios(stack_e, stack_x).tolist() == pytest.approx(
        [similarity_ratio(english, other), similarity_ratio(other, english)]
    )


def test_degenerate_inputs():
    assert np.isnan(similarity_ratio(np.ones((1, 3)), np.ones((1, 3))))  # K = 1: no pairs
    assert np.isnan(mean_pairwise_cosine(np.ones((1, 3))))
    with pytest.raises(ValueError, match="must both have shape"):
        similarity_ratio(np.ones((3, 2)), np.ones((2, 2)))


def test_similarity_table_uses_group_items_and_skips_english():
    rng = np.random.default_rng(3)
    ids = ["a", "b", "c"]
    index = pd.DataFrame([dict(context_lang="en", question_lang=q, id=i) for q in ("en", "de") for i in ids])
    vectors = rng.normal(size=(len(index), 3, 3, 4)).astype(np.float16)  # 2 layers + embeddings, 3 parts
    members = pd.DataFrame(
        [
            dict(model="m", model_name="M", shots=2, prompt_format="v2", group="balanced", id=i, fallback=False)
            for i in ("a", "c")
        ]
    )
    table = similarity_table(vectors, index, members)
    assert set(table["lang"]) == {"de"}
    assert len(table) == 3 * 3 and set(table["k"]) == {2}
    assert table["relative_depth"].max() == 1.0
    row = table[(table["layer"] == 1) & (table["part"] == "context")].iloc[0]
    english = vectors[[0, 2], 1, 1].astype(np.float32)
    other = vectors[[3, 5], 1, 1].astype(np.float32)
    assert row["ratio"] == pytest.approx(similarity_ratio(english, other), rel=1e-5)


def test_similarity_table_leaves_out_items_without_a_last_token_state():
    rng = np.random.default_rng(4)
    ids = ["a", "b", "c"]
    index = pd.DataFrame([dict(context_lang="en", question_lang=q, id=i) for q in ("en", "de") for i in ids])
    vectors = rng.normal(size=(len(index), 3, 3, 4)).astype(np.float16)
    vectors[4, :, 2] = np.nan  # item b asked in German: an empty answer, no last-token state
    members = pd.DataFrame(
        [
            dict(model="m", model_name="M", shots=2, prompt_format="v2", group="balanced", id=i, fallback=False)
            for i in ids
        ]
    )
    table = similarity_table(vectors, index, members)
    k = table.groupby("part")["k"].unique().map(list).to_dict()
    assert k == {"question": [3], "context": [3], "last": [2]}
    assert table["ratio"].notna().all()
    row = table[(table["layer"] == 2) & (table["part"] == "last")].iloc[0]
    english, other = vectors[[0, 2], 2, 2].astype(np.float32), vectors[[3, 5], 2, 2].astype(np.float32)
    assert row["ratio"] == pytest.approx(similarity_ratio(english, other), rel=1e-5)
