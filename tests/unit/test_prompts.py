from dataclasses import astuple

import pytest

from helpers import ROOT
from xmrc import LANGUAGES, data, tables
from xmrc.exceptions import XmrcError
from xmrc.prompts import (
    COMPACT,
    PARTS,
    Example,
    Layout,
    apply_template,
    build_body,
    build_prompt_table,
    directions,
    hf_chat_template,
)

SUBSET = ROOT / "data/xquad_subset"
# the full XQuAD JSON of the project's shared folder, beside the checkout (skipped where it is not)
FULL_XQUAD = ROOT.parent / "shared/data/xquad"
DEMOS = ["56dde1d966d3e219004dad8d", "56de49564396321400ee277a"]
# five demonstrations of the bundled subset: the paper's two first (k-shot takes the first k)
FIVE_DEMOS = DEMOS + ["56de0daecffd8e1900b4b595", "56de0daecffd8e1900b4b596", "56de0f6a4396321400ee257f"]
INSTRUCTION_EN = (
    "You should only present your answer to the last question by strictly copying the corresponding "
    "part of the context. Please provide a direct answer in English without extra output. Your "
    "answer should be in the form of \u201cAnswer: {Your Answer}\u201d"
)
INTRO = (
    "Below is a reading comprehension task. There will be paragraphs of context, each followed by a question "
    "related to its content. "
)


@pytest.fixture(scope="module")
def table():
    return data.prepare(data.load_local(SUBSET, LANGUAGES), LANGUAGES)[0]


DEMO_EXAMPLES = [Example("C1 text.", "Q1?", "A1"), Example("C2 text.", "Q2?", "A2")]
TEST = Example("The test context.", "The test question?")
LABELS = ("Context", "Question", "Answer")


def test_v1_two_shot_is_verbatim():
    prompt = build_body(TEST, DEMO_EXAMPLES, "v1", "en", True, COMPACT)
    assert prompt.text == "\n".join(
        [
            INTRO + INSTRUCTION_EN,
            "Context: C1 text.",
            "Question: Q1?",
            "Answer: A1",
            "Context: C2 text.",
            "Question: Q2?",
            "Answer: A2",
            "Your task starts here:",
            "Context: The test context.",
            "Question: The test question?",
            "Answer:",
        ]
    )


def test_v2_moves_the_instruction_after_the_question_and_names_the_answer_language():
    prompt = build_body(TEST, [], "v2", "de", False, COMPACT)
    assert prompt.text == "\n".join(
        [
            "Your task starts here:",
            "Context: The test context.",
            "Question: The test question?",
            INSTRUCTION_EN.replace("in English", "in German"),
        ]
    )
    assert "demonstrations" not in prompt.spans


@pytest.mark.parametrize("fmt", ["v1", "v2"])
@pytest.mark.parametrize("base", [True, False])
@pytest.mark.parametrize(
    "layout", [COMPACT, Layout(), Layout(system_prompt="Be brief.")], ids=["compact", "paper", "paper-system"]
)
def test_spans_cover_exactly_their_parts(fmt, base, layout):
    """Each span runs from its part's first character to its last, under every layout: the separator (one or
    two line breaks) belongs to no part, so a part gains no line-break token at its edges."""
    prompt = build_body(TEST, DEMO_EXAMPLES, fmt, "en", base, layout)
    text, spans = prompt.text, prompt.spans
    assert text[slice(*spans["context"])] == TEST.context
    assert text[slice(*spans["question"])] == TEST.question
    description = text[slice(*spans["task_description"])]
    assert description == (INTRO + INSTRUCTION_EN if fmt == "v1" else INSTRUCTION_EN)
    demos = text[slice(*spans["demonstrations"])]
    lines = [f"{label}: {value}" for d in DEMO_EXAMPLES for label, value in zip(LABELS, astuple(d))]
    assert demos == layout.separator.join(lines)
    for start, end in spans.values():
        assert text[start] not in "\n " and text[end - 1] not in "\n "


A3 = {fmt: (ROOT / "tests" / "data" / f"a3_{fmt}.txt").read_text(encoding="utf-8").rstrip("\n") for fmt in ("v1", "v2")}


@pytest.mark.parametrize("fmt", ["v1", "v2"])
@pytest.mark.parametrize("system_prompt", [None, "You are a careful reader."])
def test_paper_layout_is_appendix_a3_character_by_character(table, fmt, system_prompt):
    """A.3's printed v1/v2 (tests/data/a3_*.txt, cut from the paper's text), its placeholders filled with the
    paper's demonstration ids and a test item of the bundled XQuAD: the default layout's 2-shot prompt."""
    layout = Layout(system_prompt=system_prompt)
    prompts = build_prompt_table(table, ["en", "de"], 2, fmt, DEMOS, None, max_items=1, layout=layout)
    row = prompts[prompts["question_lang"] == "de"].iloc[0]
    by_lang = {lang: rows.set_index("id") for lang, rows in table.groupby("lang")}
    expected = A3[fmt]
    expected = expected.replace("{system prompt}", system_prompt) if system_prompt else expected.split("\n\n", 1)[1]
    values = {
        "{text context}": by_lang["en"].loc[row["id"], "context"],
        "{text question}": by_lang["de"].loc[row["id"], "question"].strip(),
    }
    for k, demo in enumerate(DEMOS, 1):
        values[f"{{demo context {k}}}"] = by_lang["en"].loc[demo, "context"]
        values[f"{{demo question {k}}}"] = by_lang["de"].loc[demo, "question"].strip()
        values[f"{{demo answer {k}}}"] = by_lang["en"].loc[demo, "answer_text"]
    for placeholder, value in values.items():
        expected = expected.replace(placeholder, value)
    assert row["prompt"] == expected
    assert "in English" in row["prompt"] and "Rollo" in row["prompt"]


def test_switches_change_only_what_they_name(table):
    def prompt(**switches):
        rows = build_prompt_table(table, ["en", "de"], 2, "v1", DEMOS, None, max_items=1, layout=Layout(**switches))
        return rows[rows["context_lang"] == "de"].iloc[0]["prompt"]

    paper = prompt()
    assert prompt(layout="compact") == paper.replace("\n\n", "\n")
    assert prompt(answer_cue="label") == paper + "\n\nAnswer:"
    assert "in German" in paper and prompt(answer_language="english") == paper.replace("in German", "in English")
    assert prompt(system_prompt="SYS") == "SYS\n\n" + paper
    with pytest.raises(
        XmrcError, match=r"^protocol.layout: unknown value 'double' \(expected one of paper, compact\)$"
    ):
        Layout(layout="double")


def test_system_prompt_goes_to_chat_templates_without_a_default(tiny_models, table):
    from transformers import AutoTokenizer

    for name, has_default in (("mistral-chat", False), ("qwen2-chat", True)):
        tokenizer = AutoTokenizer.from_pretrained(tiny_models[name])
        rendered = hf_chat_template(tokenizer, "SYS-PROMPT")("Hello")
        assert ("SYS-PROMPT" in rendered) is not has_default, name


def test_chat_template_shifts_spans():
    body = build_body(TEST, DEMO_EXAMPLES, "v1", "en", False, COMPACT)
    prompt = apply_template(body, lambda text: f"<s>[USER]{text}[/USER][BOT]")
    assert prompt.text.startswith("<s>[USER]")
    for part in PARTS:
        assert prompt.text[slice(*prompt.spans[part])] == body.text[slice(*body.spans[part])]
    with pytest.raises(XmrcError, match="altered"):
        apply_template(body, lambda text: text.upper())


def test_unknown_format():
    with pytest.raises(XmrcError, match="unknown prompt format 'v9'"):
        build_body(TEST, [], "v9", "en", True, COMPACT)


def test_23_directions():
    found = directions(LANGUAGES)
    assert len(found) == 23
    assert [d.label for d in found[:2]] == ["en-en", "en-de"] and found[12].label == "de-de"
    assert all(d.answer_lang == d.context_lang for d in found)


def test_x_y_is_every_pair_and_keeps_the_paper_directions_first():
    assert len(directions(LANGUAGES, ["x-y"])) == 144
    assert directions(LANGUAGES, ["en-x", "x-x", "x-y"])[:23] == directions(LANGUAGES)
    assert len(directions(LANGUAGES, ["en-x", "x-x", "x-y"])) == 144  # each direction once
    three = directions(["en", "de", "zh"], ["x-y"])
    assert [d.label for d in three] == ["en-en", "en-de", "en-zh", "de-en", "de-de", "de-zh", "zh-en", "zh-de", "zh-zh"]
    assert [d.label for d in directions(["en", "de"], ["x-x"])] == ["de-de"]
    with pytest.raises(XmrcError, match="unknown scenario 'y-x'"):
        directions(LANGUAGES, ["y-x"])


def test_x_y_prompts_answer_in_the_context_language(table):
    prompts = build_prompt_table(table, ["en", "de", "zh"], 2, "v2", DEMOS, None, max_items=2, scenarios=["x-y"])
    assert len(prompts) == 9 * 2
    by_lang = {lang: rows.set_index("id") for lang, rows in table.groupby("lang")}
    row = prompts[(prompts["context_lang"] == "de") & (prompts["question_lang"] == "zh")].iloc[0]
    assert row["answer_lang"] == "de" and row["gold"] == by_lang["de"].loc[row["id"], "answer_text"]
    assert row["prompt"][row["question_start"] : row["question_end"]] == by_lang["zh"].loc[row["id"], "question"]
    assert row["prompt"][row["context_start"] : row["context_end"]] == by_lang["de"].loc[row["id"], "context"]
    demos = row["prompt"][row["demonstrations_start"] : row["demonstrations_end"]]
    # demonstrations in the same direction: German context and answer, Chinese question
    assert by_lang["zh"].loc[DEMOS[1], "question"].strip() in demos
    assert by_lang["de"].loc[DEMOS[1], "answer_text"] in demos and "in German" in row["prompt"]


def test_k_shot_uses_the_first_k_demonstrations_and_evaluates_the_rest(table):
    five = build_prompt_table(table, ["en"], 5, "v1", FIVE_DEMOS, None)
    assert (five["prompt"].str.count("Context: ") == 6).all()  # five demonstrations and the test item
    assert not set(FIVE_DEMOS) & set(five["id"]) and len(five) == 50 - 5
    three = build_prompt_table(table, ["en"], 3, "v1", FIVE_DEMOS, None)
    assert set(FIVE_DEMOS[3:]) <= set(three["id"]) and not set(FIVE_DEMOS[:3]) & set(three["id"])
    with pytest.raises(XmrcError, match=r"^demonstrations: 6-shot needs at least 6 demonstration ids, 5 given$"):
        build_prompt_table(table, ["en"], 6, "v1", FIVE_DEMOS, None)


def test_prompt_table_for_en_x_and_x_x(table):
    prompts = build_prompt_table(table, LANGUAGES, 2, "v1", DEMOS, None, max_items=5)
    assert len(prompts) == 23 * 5
    assert not set(DEMOS) & set(prompts["id"])  # demonstrations are never evaluated
    by_lang = {lang: rows.set_index("id") for lang, rows in table.groupby("lang")}
    row = prompts[(prompts["context_lang"] == "en") & (prompts["question_lang"] == "zh")].iloc[0]
    assert row["gold"] == by_lang["en"].loc[row["id"], "answer_text"]
    assert row["prompt"][row["question_start"] : row["question_end"]] == by_lang["zh"].loc[row["id"], "question"]
    assert row["prompt"][row["context_start"] : row["context_end"]] == by_lang["en"].loc[row["id"], "context"]
    # en-x demonstrations: English context and answer, question in x
    demos = row["prompt"][row["demonstrations_start"] : row["demonstrations_end"]]
    assert by_lang["zh"].loc[DEMOS[0], "question"] in demos and "Answer: Rollo" in demos
    # the literal print: a base model's prompt ends at the question (v1), no "Answer:" cue
    assert "in English" in row["prompt"] and row["prompt"].endswith(
        "Question: " + by_lang["zh"].loc[row["id"], "question"].strip()
    )
    xx = prompts[(prompts["context_lang"] == "th") & (prompts["question_lang"] == "th")].iloc[0]
    assert xx["gold"] == by_lang["th"].loc[xx["id"], "answer_text"] and "in Thai" in xx["prompt"]
    assert by_lang["th"].loc[DEMOS[1], "answer_text"] in xx["prompt"]


def test_zero_shot_has_no_demonstrations_and_evaluates_their_items(table):
    prompts = build_prompt_table(table, ["en", "de"], 0, "v2", DEMOS, None, max_items=3)
    assert len(prompts) == 3 * 3
    assert (prompts["demonstrations_start"] == -1).all()
    assert (prompts["prompt"].str.count("Context: ") == 1).all()
    # the subset's first item is a demonstration: outside the prompt, it is a test item like any other
    assert DEMOS[0] in set(prompts["id"])
    assert not set(DEMOS) & set(build_prompt_table(table, ["en"], 2, "v2", DEMOS, None)["id"])


@pytest.mark.skipif(not FULL_XQUAD.is_dir(), reason="the full XQuAD JSON is not on this machine")
def test_full_xquad_scores_1190_items_at_0_shot_and_1188_at_2_shot():
    full = data.prepare(data.load_local(FULL_XQUAD, LANGUAGES), LANGUAGES)[0]
    counts = {}
    for shots in (0, 2):
        prompts = build_prompt_table(full, LANGUAGES, shots, "v1", DEMOS, None)
        items = prompts[["id", "context_lang", "question_lang"]].assign(
            model="m", shots=shots, prompt_format="v1", em=0.0, f1=0.0
        )
        scores = tables.direction_scores(items)
        assert len(scores) == 23
        counts[shots] = set(scores["n"])
    # the paper's 0-shot EM values are multiples of 1/1190; 2-shot leaves out the two demonstration items
    assert counts == {0: {1190}, 2: {1188}}


def test_unknown_demonstration_id(table):
    with pytest.raises(XmrcError, match="nope"):
        build_prompt_table(table, LANGUAGES, 2, "v1", ["nope", DEMOS[1]], None)


def test_real_chat_templates_keep_spans(tiny_models, table):
    from transformers import AutoTokenizer

    for name in ("llama-chat", "qwen2-chat", "gemma2-chat", "mistral-chat"):
        tokenizer = AutoTokenizer.from_pretrained(tiny_models[name])
        prompts = build_prompt_table(table, ["en", "vi"], 2, "v2", DEMOS, hf_chat_template(tokenizer), max_items=2)
        row = prompts.iloc[-1]
        assert bool(row["templated"]) and not row["prompt"].endswith("Answer:")
        assert (
            row["prompt"][row["question_start"] : row["question_end"]]
            == table[(table["lang"] == "vi") & (table["id"] == row["id"])]["question"].iloc[0]
        )
    base = AutoTokenizer.from_pretrained(tiny_models["llama-base"])
    with pytest.raises(XmrcError, match="no chat template"):
        hf_chat_template(base)
