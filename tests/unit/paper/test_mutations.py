"""Mutation tests of the findings engine: for every finding, data built so that it holds, so that it is
reversed, and so that there is no effect must give "holds", "does not hold" and "cannot tell".

The no-effect data are clustered: every item of a paragraph shares the paragraph's deviation, whose mean over
the 12 paragraphs is small but not zero. Resampled by paragraph the interval covers the null; resampled by
item (as if the 240 items were independent) it would not, so the unit is tested with the verdicts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xmrc.bootstrap import BootstrapSettings
from xmrc.errors import KEYS
from xmrc.paper.claims import FINDINGS, GENERATION_MARGIN, LANGUAGE_MARGIN
from xmrc.paper.findings import evaluate
from xmrc.paper.measures import (
    Sample,
    error_measures,
    finetune_measure,
    oracle_measures,
    phase_measure,
    score_measures,
    similarity_measures,
)
from xmrc.paper.verdicts import FAILS, HOLDS, UNSURE

PARAGRAPHS, PER_PARAGRAPH = 12, 20
# Per-paragraph deviations: mean 0.05, standard deviation ~0.19 (the no-effect data's only signal).
PATTERN = np.array([0.30, 0.20, 0.10, 0.05, -0.05, -0.10, -0.20, 0.35, 0.25, -0.15, 0.10, -0.25])
IDS = [f"p{p}q{q}" for p in range(PARAGRAPHS) for q in range(PER_PARAGRAPH)]
PARAGRAPH = {i: int(i[1:].split("q")[0]) for i in IDS}
SAMPLE = Sample(pd.Series({i: f"p{p}" for i, p in PARAGRAPH.items()}), BootstrapSettings(resamples=2000))
LANGS = ["de", "zh", "ar"]
EFFECT = {HOLDS: 0.4, FAILS: -0.4, UNSURE: 0.0}
CASES = [HOLDS, FAILS, UNSURE]


def verdict(measured, key: str, population: str = "base") -> str:
    found = evaluate([m for m in measured if m.key == key], population).set_index("finding")
    return found.loc[FINDINGS[key].name, "verdict"]


def shift(case: str, item: str) -> float:
    """b − a of one item: the case's effect, plus (no effect) the item's paragraph deviation."""
    return EFFECT[case] + PATTERN[PARAGRAPH[item]] * (case == UNSURE)


def item_scores(f1) -> pd.DataFrame:
    """Item scores of model M (2-shot and 0-shot, format v1) and T (its tuned copy, 2-shot); f1(model, shots,
    context, question, id) in 0..1."""
    rows = []
    for model, shots in (("M", 2), ("M", 0), ("T", 2)):
        for context, question in [("en", "en")] + [("en", q) for q in LANGS] + [(q, q) for q in LANGS]:
            for i in IDS:
                score = f1(model, shots, context, question, i)
                rows.append((model, shots, "v1", context, question, i, float(score == 1), score))
    columns = ["model", "shots", "prompt_format", "context_lang", "question_lang", "id", "em", "f1"]
    return pd.DataFrame(rows, columns=columns)


CHOSEN = {("M", 2): "v1", ("M", 0): "v1", ("T", 2): "v1"}


def _pair(a_is, case):
    """f1 where the rows `a_is` selects get 0.5 − shift/2 and the others 0.5 + shift/2."""

    def f1(model, shots, context, question, i):
        half = shift(case, i) / 2
        return 0.5 - half if a_is(model, shots, context, question) else 0.5 + half

    return f1


SCORE_SIDES = {
    # finding: the rows of side a (θ = b − a; the rows of no interest sit on side b's or a's value alike)
    "gap": lambda m, s, c, q: c == "en" and q != "en",
    "monolingual": lambda m, s, c, q: c == "en" and q != "en",
    "shots": lambda m, s, c, q: s == 0,
    "qt_lora": lambda m, s, c, q: m == "M",
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("key", ["gap", "monolingual", "shots", "qt_lora"])
def test_score_findings_come_out_every_way(key, case):
    items = item_scores(_pair(SCORE_SIDES[key], case))
    if key == "qt_lora":
        measured = [finetune_measure(items, CHOSEN, "M", "T", SAMPLE)]
    else:
        measured = score_measures(items, CHOSEN, "M", SAMPLE)
    assert verdict(measured, key) == case


def test_the_no_effect_data_would_pass_as_an_effect_if_items_were_resampled_as_independent():
    items = item_scores(_pair(SCORE_SIDES["gap"], UNSURE))
    by_item = Sample(SAMPLE.paragraphs, SAMPLE.settings, unit="item")
    assert verdict(score_measures(items, CHOSEN, "M", by_item), "gap") == HOLDS
    assert verdict(score_measures(items, CHOSEN, "M", SAMPLE), "gap") == UNSURE


def _wrong(rate_of_paragraph) -> pd.DataFrame:
    """Wrong en-x answers of M, every item in every language; flagged where the item's rank within its
    paragraph's 60 answers is below the paragraph's rate."""
    rows = []
    for i in IDS:
        p, q = PARAGRAPH[i], int(i.split("q")[1])
        for k, lang in enumerate(LANGS):
            flagged = (q * len(LANGS) + k) < rate_of_paragraph(p) * PER_PARAGRAPH * len(LANGS)
            rows.append(("M", 2, "v1", "en", lang, i, flagged))
    return pd.DataFrame(
        rows, columns=["model", "shots", "prompt_format", "context_lang", "question_lang", "id", "flag"]
    )


def _rates(margin: float) -> dict:
    # holds: none flagged; reversed: half; no effect: alternate paragraphs at 0 and at twice the margin
    return {HOLDS: lambda p: 0.0, FAILS: lambda p: 0.5, UNSURE: lambda p: (2 * margin / 100) * (p % 2)}


@pytest.mark.parametrize("case", CASES)
def test_language_errors_come_out_every_way_for_post_trained_models(case):
    wrong = _wrong(_rates(LANGUAGE_MARGIN)[case]).rename(columns={"flag": "language_error"})
    measured = error_measures(wrong, None, None, "M", SAMPLE)
    assert verdict(measured, "language", "post-trained") == case
    assert verdict(measured, "language", "base") == "not tested"  # the paper's claim is about post-trained models


@pytest.mark.parametrize("case", CASES)
def test_generation_failures_come_out_every_way(case):
    wrong = _wrong(_rates(GENERATION_MARGIN)[case])
    judge = wrong.assign(verdict=np.where(wrong["flag"], 2, 0), judge="J").drop(columns="flag")
    rule = wrong.assign(rule_blank=False).drop(columns="flag")
    assert verdict(error_measures(None, judge, rule, "M", SAMPLE), "generation") == case


def test_a_judge_that_fails_its_gate_cannot_decide():
    wrong = _wrong(_rates(GENERATION_MARGIN)[HOLDS])
    judge = wrong.assign(verdict=1, judge="J").drop(columns="flag")  # calls every non-empty answer blank
    rule = wrong.assign(rule_blank=False).drop(columns="flag")
    found = evaluate(error_measures(None, judge, rule, "M", SAMPLE), "base").set_index("finding")
    assert found.loc[FINDINGS["generation"].name, "verdict"] == UNSURE
    assert "calibration gate" in found.loc[FINDINGS["generation"].name, "note"]


def _oracle(correct, f1=lambda lang, i: 0.0, units: int = 4, langs=("en", *LANGS), ids=IDS):
    """Attributions (correct(lang, i) -> step_correct) and item scores of M over `langs` (context en)."""
    attributions = pd.DataFrame(
        [("M", 2, "v1", "en", lang, i, "ok", units, bool(correct(lang, i))) for lang in langs for i in ids],
        columns=[
            "model",
            "shots",
            "prompt_format",
            "context_lang",
            "question_lang",
            "id",
            "status",
            "n_units",
            "step_correct",
        ],
    )
    items = attributions[KEYS].assign(
        em=0.0, f1=[f1(lang, i) for lang, i in zip(attributions["question_lang"], attributions["id"])]
    )
    return attributions, items


def _quarter(lang, i):  # a quarter of each paragraph's items: chance with 4 sentences
    return int(i.split("q")[1]) % 4 == 0


ORACLE_CASES = {
    "oracle_chance": {
        HOLDS: dict(correct=lambda lang, i: True),
        FAILS: dict(correct=lambda lang, i: False),
        UNSURE: dict(correct=_quarter),
    },
    "oracle_answers": {
        HOLDS: dict(correct=lambda lang, i: True),
        FAILS: dict(correct=lambda lang, i: False, f1=lambda lang, i: 1.0),
        UNSURE: dict(correct=lambda lang, i: int(i.split("q")[1]) % 2 == 0, f1=lambda lang, i: 0.5),
    },
    "oracle_close": {
        # the same accuracy in both, item by item but for one item per paragraph either way
        HOLDS: dict(correct=lambda lang, i: _quarter(lang, i) != (lang != "en" and i.endswith("q1"))),
        FAILS: dict(correct=lambda lang, i: lang != "en"),
        # one item per paragraph, right in one of the two, alternately: means alike, intervals as wide as they come
        UNSURE: dict(
            correct=lambda lang, i: int(i[1:].split("q")[0]) % 2 == (lang != "en"),
            ids=[f"p{p}q0" for p in range(PARAGRAPHS)],
        ),
    },
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("key", sorted(ORACLE_CASES))
def test_oracle_findings_come_out_every_way(key, case):
    attributions, items = _oracle(**ORACLE_CASES[key][case])
    assert verdict(oracle_measures(attributions, items, SAMPLE), key) == case


def test_an_oracle_at_chance_is_no_evidence_of_locating_the_answer_even_above_wrong_answers():
    attributions, items = _oracle(correct=_quarter)  # 25% with 4 sentences, every answer wrong
    measured = oracle_measures(attributions, items, SAMPLE)
    assert verdict(measured, "oracle_answers") == HOLDS
    assert verdict(measured, "oracle_chance") == UNSURE


LAYERS = 20


@pytest.mark.parametrize("case", CASES)
def test_the_two_phases_come_out_every_way(case):
    rows = []
    for lang in LANGS:
        for i in IDS:
            gap = 0.1 + (0.5 if case == HOLDS else -0.5 if case == FAILS else 0.05 + PATTERN[PARAGRAPH[i]])
            rows += [("en", lang, i, "question", 5.0, LAYERS), ("en", lang, i, "context", 5.0 + gap * LAYERS, LAYERS)]
    relevance = pd.DataFrame(rows, columns=["context_lang", "question_lang", "id", "part", "mrd", "layers"])
    assert verdict([phase_measure(relevance, SAMPLE)], "phases") == case


def _similarity(profile, part):
    """similarity.csv (language-wise cosines of 1: S is the paired cosine) and per-item rows of `part`,
    profile(layer, id) -> the item's centred cosine, layers 0..12."""
    layers = range(13)
    table = pd.DataFrame(
        [("g", lang, part, layer, 1.0, 1.0) for lang in LANGS for layer in layers],
        columns=["group", "lang", "part", "layer", "language_cos", "language_cos_centred"],
    )
    items = pd.DataFrame(
        [("g", lang, part, layer, i, 0.9, profile(layer, i)) for lang in LANGS for layer in layers for i in IDS],
        columns=["group", "lang", "part", "layer", "id", "cos", "cos_centred"],
    )
    return table, items


def _arc(case):
    def profile(layer, i):
        if case == UNSURE:  # flat but for the window, raised by the paragraph's deviation
            return 0.5 + (0.2 * PATTERN[PARAGRAPH[i]] if 3 <= layer <= 5 else 0.0)
        peak = 1.0 - abs(layer - 4) / 8  # highest at 4 of 12, a third of the depth
        return peak if case == HOLDS else 1.5 - peak

    return profile


def _decline(case):
    def profile(layer, i):
        if case == UNSURE:  # flat; the last layer moved by the paragraph's deviation only
            return 0.5 - (0.2 * PATTERN[PARAGRAPH[i]] if layer == 12 else 0.0)
        rise = 0.3 * (layer >= 9) * (layer - 8) / 4  # the last layers move away from (or toward) English
        return 0.6 - rise if case == HOLDS else 0.6 + rise

    return profile


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("key, part, shape", [("question_arc", "question", _arc), ("last_decline", "last", _decline)])
def test_similarity_shapes_come_out_every_way(key, part, shape, case):
    table, items = _similarity(shape(case), part)
    assert verdict(similarity_measures(table, items, SAMPLE), key) == case


def test_noise_in_the_last_layers_is_not_a_decline():
    # S wobbles in the second half and ends at its mean: a max over a window holding the end point would
    # call every such curve a decline
    table, items = _similarity(lambda layer, i: 0.5 + 0.05 * ((layer % 3) - 1) * (layer >= 6), "last")
    assert verdict(similarity_measures(table, items, SAMPLE), "last_decline") != HOLDS


def test_every_declared_finding_has_mutation_tests():
    tested = set(SCORE_SIDES) | set(ORACLE_CASES) | {"language", "generation", "phases", "question_arc", "last_decline"}
    assert tested == set(FINDINGS)
