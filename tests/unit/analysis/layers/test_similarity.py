import itertools

import numpy as np
import pandas as pd
import pytest

from xmrc.analysis.layers.similarity import (
    mean_pairwise_cosine,
    similarity_ratio,
    similarity_ratios,
    similarity_table,
    similarity_tables,
)


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


def hidden_file(english, other):
    """A hidden-state array of one part and depth (prompts, 1, 3, d: the part in all three slots) and its index:
    the English run's rows of items e_k, then the German run's x_k."""
    ids = [f"i{k}" for k in range(len(english))]
    index = pd.DataFrame(
        [dict(context_lang="en", question_lang=q, id=i) for q in ("en", "de") for i in ids],
    )
    vectors = np.concatenate([english, other])[:, None, None, :].repeat(3, axis=2)
    members = pd.DataFrame(
        [
            dict(model="m", model_name="M", shots=2, prompt_format="v1", group="balanced", id=i, fallback=False)
            for i in ids
        ]
    )
    return vectors, index, members


def test_centring_removes_a_shared_dominant_direction():
    # every vector = a big common offset + an item-specific part + a language-specific part; raw cosines all
    # near 1 (anisotropy), so the raw ratio is near 1 whether or not x_k carries e_k's item part
    rng = np.random.default_rng(7)
    k, d = 16, 64
    offset = 50 * rng.normal(size=d)
    items, unrelated = 2 * rng.normal(size=(k, d)), 2 * rng.normal(size=(k, d))
    english = offset + items + rng.normal(size=d)
    shared = offset + items + rng.normal(size=d)  # German twins carry the English items' parts
    not_shared = offset + unrelated + rng.normal(size=d)  # the same geometry, unrelated items
    rows = {}
    for name, other in (("shared", shared), ("not shared", not_shared)):
        table, _ = similarity_tables(*hidden_file(english, other))
        rows[name] = table[table["part"] == "question"].iloc[0]
    for row in rows.values():
        assert row["sample_cos"] > 0.99 and row["language_cos"] > 0.99  # saturated
        assert row["ratio"] == pytest.approx(1.0, abs=0.01)
    assert rows["shared"]["ratio_centred"] > 2  # centred: the item parts show
    assert rows["not shared"]["ratio_centred"] < 1
    assert rows["shared"]["language_cos_centred"] < 0.5 and rows["shared"]["sample_cos_centred"] > 0.5


def test_item_table_reproduces_the_ratio_with_the_language_denominator_held():
    rng = np.random.default_rng(8)
    ids = [f"i{k}" for k in range(5)]
    index = pd.DataFrame([dict(context_lang="en", question_lang=q, id=i) for q in ("en", "de", "zh") for i in ids])
    vectors = (rng.normal(size=(len(index), 3, 3, 6)) + 2.0).astype(np.float16)
    vectors[7, :, 2] = np.nan  # i2 asked in German: no last-token state, left out of that part
    members = pd.DataFrame(
        [
            dict(model="m", model_name="M", shots=2, prompt_format="v1", group=g, id=i, fallback=False)
            for g in ("balanced", "en-superior")
            for i in (ids if g == "balanced" else ids[:3])
        ]
    )
    table, items = similarity_tables(vectors, index, members)
    cell = ["group", "lang", "part", "layer"]
    means = items.groupby(cell).agg(cos=("cos", "mean"), cos_centred=("cos_centred", "mean"), n=("id", "size"))
    joined = table.set_index(cell).join(means)
    assert len(joined) == len(table) == 2 * 2 * 3 * 3 and (joined["n"] == joined["k"]).all()
    # S = mean_k cos_k / language_cos: the item table's mean over k over the table's denominator
    assert np.allclose(joined["cos"] / joined["language_cos"], joined["ratio"])
    assert np.allclose(joined["cos"], joined["sample_cos"])
    centred = joined[joined["language_cos_centred"] > 0]
    assert len(centred) and np.allclose(
        centred["cos_centred"] / centred["language_cos_centred"], centred["ratio_centred"]
    )
    assert joined.loc[joined["language_cos_centred"] <= 0, "ratio_centred"].isna().all()
    assert set(items.loc[(items["lang"] == "de") & (items["part"] == "last"), "id"]) == set(ids) - {"i2"}


def test_layer_means_leave_out_nan_vectors_and_cover_every_prompt(monkeypatch):
    import xmrc.analysis.layers.similarity as similarity

    monkeypatch.setattr(similarity, "_MEAN_BLOCK", 2)  # several blocks
    rng = np.random.default_rng(9)
    vectors = rng.normal(size=(5, 2, 3, 4))
    vectors[1, :, 2] = np.nan
    means = similarity.layer_means(vectors)
    assert np.allclose(means[:, :2], vectors[:, :, :2].mean(axis=0))
    assert np.allclose(means[:, 2], vectors[[0, 2, 3, 4], :, 2].mean(axis=0))
