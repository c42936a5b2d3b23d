"""The batched evaluator against Captum's FeatureAblation on real prompts and tiny models."""

import numpy as np
import pytest

from helpers import ROOT
from xmrc.analysis.oracle.ablation import (
    BatchedAblation,
    CaptumAblation,
    Target,
    align_target,
    answer_span,
    attribution_from_log_probs,
    encode,
    item_from_prompt,
    top_unit,
)
from xmrc.analysis.oracle.sentences import context_units
from xmrc.data import load_local
from xmrc.prompts import build_prompt_table, hf_chat_template

SUBSET = ROOT / "data" / "xquad_subset"
DEMOS = ["56dde1d966d3e219004dad8d", "56de49564396321400ee277a"]


@pytest.fixture(scope="module")
def xquad():
    return load_local(SUBSET, ["en", "de", "zh"])


def load(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return AutoModelForCausalLM.from_pretrained(path).eval(), tokenizer


def whole_characters(ids, tokenizer):
    """A target of the longest prefix of `ids` that decodes to whole characters (random models emit
    fragments of multi-byte characters, which Captum's token pretty-printer cannot handle)."""
    for end in range(len(ids), 1, -1):
        if not tokenizer.decode(ids[:end]).endswith("\ufffd"):
            return Target(list(ids[:end]), 1)
    return Target(list(ids[:2]), 1)


def items(xquad, model, tokenizer, chat, count, fmt="v1", languages=("de", "zh")):
    """Ablation items of `count` test items per en-x direction, targets as the model generates them."""
    import torch

    prompts = build_prompt_table(
        xquad, list(languages), 2, fmt, DEMOS, hf_chat_template(tokenizer) if chat else None, count
    )
    english = xquad[xquad["lang"] == "en"].set_index("id")
    result = []
    for row in prompts.itertuples():
        ids = encode(tokenizer, row.prompt, row.templated)
        generated = model.generate(
            torch.tensor([ids]), max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )[0, len(ids) :].tolist()
        target = align_target(generated, tokenizer) or whole_characters(generated, tokenizer)
        gold = english.loc[row.id]
        units = context_units(gold["context"], gold["answer_text"], int(gold["answer_start"]), "en").units
        item = item_from_prompt(row.prompt, row.context_start, [(u.start, u.end) for u in units], row.templated, target)
        assert item.prompt == row.prompt
        result.append(item)
    return result


@pytest.mark.parametrize(
    "name, chat, languages",
    [("llama-chat", True, ("de", "zh")), ("llama-base", False, ("en",)), ("qwen2-chat", True, ("zh",))],
)
def test_batched_attributions_equal_captum_feature_ablation(tiny_models, xquad, name, chat, languages):
    model, tokenizer = load(tiny_models[name])
    batched = BatchedAblation(model, tokenizer, batch_size=3)  # several batches per item
    captum = CaptumAblation(model, tokenizer)
    for item in items(xquad, model, tokenizer, chat, 1, languages=languages):
        expected = captum.attribute(item)
        got = batched.attribute(item)
        assert got.shape == expected.shape == (1 + len(item.target.ids), len(item.units))
        assert np.abs(got - expected).max() < 1e-4
        assert np.abs(expected).max() > 1e-3  # ablations do change the output: the comparison is not vacuous


def test_prefix_sharing_does_not_change_attributions(tiny_models, xquad):
    model, tokenizer = load(tiny_models["llama-chat"])
    item = items(xquad, model, tokenizer, True, 1, fmt="v2")[0]
    shared = BatchedAblation(model, tokenizer, batch_size=16).attribute(item)
    unshared = BatchedAblation(model, tokenizer, batch_size=16, share_prefix=False).attribute(item)
    assert np.abs(shared - unshared).max() < 1e-4


def test_shared_prefix_leaves_every_prompts_last_token():
    prompts = [[1, 2, 3, 4, 5], [1, 2, 3, 9], [1, 2, 3, 4]]
    assert BatchedAblation._shared_prefix(prompts) == 3
    assert BatchedAblation._shared_prefix([[1, 2, 3], [1, 2, 3, 4]]) == 2


def test_attribution_layout_is_captums():
    log_probs = np.array([[-1.0, -2.0], [-3.0, -2.5], [-1.0, -4.0]])  # intact, without unit 0, without unit 1
    attr = attribution_from_log_probs(log_probs)
    assert attr.tolist() == [[2.5, 2.0], [2.0, 0.0], [0.5, 2.0]]  # sequence row, then one row per token


def test_top_unit_needs_a_strict_maximum():
    assert top_unit([0.1, 0.5, 0.2]) == 1
    assert top_unit([0.5, 0.5, 0.2]) is None
    assert top_unit([]) is None


def test_answer_span_skips_the_label():
    assert answer_span("Answer: A\nmore") == (8, 9)
    assert answer_span(" Normandy\n") == (1, 9)
    assert answer_span("Answer:\nParis") == (8, 13)
    assert answer_span("   \n") is None


def test_align_target_finds_the_answers_first_token(tiny_models):
    _, tokenizer = load(tiny_models["llama-chat"])
    ids = tokenizer("Answer: the Normans\nQuestion: x", add_special_tokens=False)["input_ids"]
    target = align_target(ids, tokenizer)
    assert tokenizer.decode(target.ids).endswith("the Normans")
    assert "Answer:" in tokenizer.decode(target.ids[: target.answer_token])
    assert tokenizer.decode(target.ids[target.answer_token :]).strip() == "the Normans"
    assert align_target(tokenizer("Answer:", add_special_tokens=False)["input_ids"], tokenizer) is None


def test_step_target_is_the_answer_token_or_the_first_step(tiny_models):
    """Footnote 6's "first generation step (generating the first answer token)" parts in two when the model
    writes its own "Answer:" label (protocol.oracle_step); the Sequence target is the same under both."""
    _, tokenizer = load(tiny_models["llama-chat"])
    ids = tokenizer("Answer: the Normans\nQuestion: x", add_special_tokens=False)["input_ids"]
    answer = align_target(ids, tokenizer, step="answer_token")
    first = align_target(ids, tokenizer, step="first_step")
    assert answer.answer_token > 0 and tokenizer.decode(ids[: answer.answer_token]).strip() == "Answer:"
    assert first.answer_token == 0 and first.ids == answer.ids
    assert align_target(ids, tokenizer) == answer  # answer_token is the default
