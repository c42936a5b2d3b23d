"""Relevance conservation: the bookkeeping on tables, and AttnLRP / CP-LRP on a tiny random Llama."""

import numpy as np
import pandas as pd
import pytest

from xmrc.analysis.layers.conservation import (
    CONSERVATION_COLUMNS,
    TABLE_COLUMNS,
    conservation,
    conservation_table,
    summary_line,
)
from xmrc.analysis.layers.relevance import LayerRelevance


def test_conservation_sums_each_depth_over_the_tokens():
    relevance = np.array([[1.0, -0.5, 2.0], [0.5, 0.5, 1.0], [0.0, 0.0, 4.0]])  # (depths 0..2, 3 tokens)
    table = conservation(LayerRelevance(relevance, target_id=7, target_logit=4.0, greedy_id=7))
    assert list(table.columns) == CONSERVATION_COLUMNS
    assert table["layer"].tolist() == [0, 1, 2]
    assert table["relevance_sum"].tolist() == [2.5, 2.0, 4.0]  # signed: -0.5 cancels, no |r|
    assert table["ratio"].tolist() == [0.625, 0.5, 1.0] and (table["explained_logit"] == 4.0).all()


def relevance_rows(sums: dict[str, list[float]], logits: dict[str, float]) -> pd.DataFrame:
    """Relevance-table rows of a setting: 2 part rows per item (the item's sums repeat on each)."""
    rows = []
    for item, item_sums in sums.items():
        for part in ("context", "question"):
            rows.append(
                dict(model="m", shots=2, prompt_format="v2", context_lang="en", question_lang="de", id=item,
                     part=part, target_logit=logits[item], relevance_sum=item_sums)
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_conservation_table_counts_each_item_once_and_skips_the_unexplained():
    rows = relevance_rows({"a": [1.0, 2.0, 4.0], "b": [3.0, 3.0, 6.0], "c": []}, {"a": 4.0, "b": 6.0, "c": np.nan})
    table = conservation_table(rows)
    assert list(table.columns) == TABLE_COLUMNS and table["layer"].tolist() == [0, 1, 2]
    assert (table["n"] == 2).all()  # a and b, once each; c was not explained
    assert table["ratio_median"].tolist() == pytest.approx([0.375, 0.5, 1.0])
    assert table["ratio_min"].tolist() == pytest.approx([0.25, 0.5, 1.0])
    assert table["relevance_sum"].tolist() == pytest.approx([2.0, 2.5, 5.0])
    line = summary_line(rows)
    assert "0.38 at the embeddings, 1.00 at depth 2" in line and "farthest from 1: depth 0" in line
    assert conservation_table(rows[rows["id"] == "c"]).empty and summary_line(rows[rows["id"] == "c"]) == ""


from helpers.layers_prompts import deep_llama, prompt_rows  # noqa: E402
from xmrc.analysis.layers.inputs import encode_to_answer  # noqa: E402
from xmrc.analysis.layers.relevance import layer_relevance  # noqa: E402


@pytest.fixture(scope="module")
def deep(tiny_models, tmp_path_factory):
    return deep_llama(tiny_models["llama-base"], tmp_path_factory.mktemp("deep_llama"))


def test_cp_lrp_conserves_relevance_at_every_depth_and_attnlrp_loses_some(deep):
    """A Llama has no biases: CP-LRP (no relevance through the attention scores) conserves the explained logit
    exactly at every depth, which checks the per-depth sums; AttnLRP's softmax rule absorbs part of it."""
    model, tokenizer = deep
    prompt, start = encode_to_answer(tokenizer, prompt_rows(tokenizer, chat=False).iloc[2])

    def ratios(**options):
        result = layer_relevance(model, [prompt], tokenizer.pad_token_id, targets=[start.target_id], **options)[0]
        return conservation(result)["ratio"].to_numpy()

    attnlrp = ratios()
    cp = ratios(variant="cp-lrp")
    assert len(cp) == 6  # embeddings + layers 1..5
    np.testing.assert_allclose(cp, 1.0, atol=1e-4)
    assert np.all((attnlrp > 0.5) & (attnlrp < 1.1)) and np.abs(attnlrp - 1).max() > 0.01  # measured 0.70-0.98
