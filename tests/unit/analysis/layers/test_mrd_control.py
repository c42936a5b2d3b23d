"""The MRD controls: their statistics, the swapped prompt and a known depth on a tiny random Llama."""

import numpy as np
import pandas as pd
import pytest

from xmrc.analysis.layers.mrd_control import release_depth, swap_context_question
from xmrc.prompts import COMPACT, PAPER_LAYOUT, Example, build_body


def test_release_depth_is_the_deepest_depth_holding_half_the_mean_share():
    assert release_depth([1, 1, 1, 1]) == 4  # flat: every depth holds the mean share
    assert release_depth([4, 4, 1.5, 0.4]) == 3  # half the mean share: 9.9 / 4 / 2 = 1.24 <= 1.5
    assert release_depth([4, 4, 1, 0.4]) == 2  # 9.4 / 8 = 1.18 > 1
    assert release_depth([0, 0, 0, 5]) == 4


@pytest.mark.parametrize("layout", [COMPACT, PAPER_LAYOUT], ids=["compact", "paper"])
def test_swapped_row_puts_the_question_before_the_context(layout):
    demos = [Example("C1.", "Q1?", "A1")]
    body = build_body(Example("The test context.", "The test question?"), demos, "v2", "en", True, layout)
    row = pd.Series({"prompt": body.text, **{f"{p}_{e}": body.spans[p][i] for p in body.spans for i, e in
                                            enumerate(("start", "end"))}})  # fmt: skip
    swapped = swap_context_question(row)
    text = swapped["prompt"]
    assert len(text) == len(body.text)
    assert text[swapped["context_start"] : swapped["context_end"]] == "The test context."
    assert text[swapped["question_start"] : swapped["question_end"]] == "The test question?"
    sep = layout.separator
    assert f"Question: The test question?{sep}Context: The test context.{sep}You should" in text
    for part in ("task_description", "demonstrations"):
        assert text[swapped[f"{part}_start"] : swapped[f"{part}_end"]] == body.text[slice(*body.spans[part])]


from helpers.layers_prompts import deep_llama, prompt_rows  # noqa: E402
from xmrc.analysis.layers.inputs import decoder_layers, encode_to_answer  # noqa: E402
from xmrc.analysis.layers.mrd_control import (  # noqa: E402
    blocked_attention,
    control_records,
    control_results,
    part_statistics,
)
from xmrc.analysis.layers.relevance import layer_relevance  # noqa: E402


@pytest.fixture(scope="module")
def deep(tiny_models, tmp_path_factory):
    return deep_llama(tiny_models["llama-base"], tmp_path_factory.mktemp("deep_llama"))


def test_known_depth_control(deep):
    """Question unread deeper than depth 2, context deeper than 3 (N = 5): the pass must give those
    representations no relevance and MRDs of at most 2 and 3, where the unblocked model has 5 for both."""
    model, tokenizer = deep
    row = prompt_rows(tokenizer, chat=False).iloc[2]
    prompt = encode_to_answer(tokenizer, row)[0]
    cuts = {"question": 2, "context": 3}
    results = control_results(model, tokenizer, row, cuts)
    assert list(results) == ["attnlrp", "cp-lrp", "known depth", "swapped"]
    records = pd.DataFrame(control_records(results, cuts)).set_index(["condition", "part"])
    free, known = records.loc["attnlrp"], records.loc["known depth"]
    for part, cut in cuts.items():
        assert free.loc[part, "mrd"] == 5 and np.sum(free.loc[part, "profile"][cut:]) > 0.1  # not vacuous
        assert known.loc[part, "share_after_cut"] == 0 and known.loc[part, "cut"] == cut
        assert known.loc[part, "mrd"] == cut
        relevance = results["known depth"][1].relevance[cut + 1 :, prompt.parts[part]]  # rows = depths 0..N
        assert not relevance.any()
    # the mask changes the model (its explained logit), and only inside the context manager
    assert results["known depth"][1].target_logit != pytest.approx(results["attnlrp"][1].target_logit, rel=1e-6)
    assert not any(layer.self_attn._forward_pre_hooks for layer in decoder_layers(model))
    # the statistics of the workflow's pass: the paper's MRD is the one part_records reports
    stats = part_statistics(results["attnlrp"][1], prompt, "question")
    assert stats["n_tokens"] == prompt.parts["question"].sum() and len(stats["profile"]) == 5
    assert sum(stats["profile"]) == pytest.approx(1.0) and stats["median_token_mrd"] <= stats["mrd"]
    swapped = results["swapped"][0]
    assert swapped.parts["question"].argmax() < swapped.parts["context"].argmax()
    assert swapped.parts["question"].sum() == prompt.parts["question"].sum()


def test_blocked_attention_with_an_eager_float_mask(deep):
    """The eager attention gets an additive float mask: blocked with the dtype's minimum, as SDPA's boolean."""
    model, tokenizer = deep
    prompt, start = encode_to_answer(tokenizer, prompt_rows(tokenizer, chat=False).iloc[0])
    model.config._attn_implementation = "eager"
    try:
        with blocked_attention(model, {1: prompt.parts["context"]}):
            result = layer_relevance(model, [prompt], tokenizer.pad_token_id, targets=[start.target_id])[0]
    finally:
        model.config._attn_implementation = "sdpa"
    context = np.abs(result.relevance[:, prompt.parts["context"]])
    assert context[:2].sum() > 0 and not context[2:].any()
