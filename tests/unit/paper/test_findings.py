"""The findings engine (xmrc.paper.findings, clusters, verdicts) on synthetic outputs whose answer is known; the
mutation tests of every finding are in test_mutations.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xmrc.bootstrap import BootstrapSettings
from xmrc.data import article_map
from xmrc.exceptions import XmrcError
from xmrc.intervals import scenario_items
from xmrc.paper.claims import FINDINGS
from xmrc.paper.clusters import paragraph_of
from xmrc.paper.findings import NOT_TESTED, check_findings, evaluate, markdown
from xmrc.paper.measures import Sample, phase_measure
from xmrc.paper.verdicts import FAILS, HOLDS, UNSURE, Above, decide, holm

LANGS = ["en", "de", "zh", "ar"]
SETTINGS = BootstrapSettings(resamples=1000)


def _items(f1, shots=2, fmt="v1", ids=None, seed=0) -> pd.DataFrame:
    """Item scores of model M: f1(context_lang, question_lang, rng) gives each item's F1 (0..1)."""
    rng = np.random.default_rng(seed)
    ids = ids if ids is not None else [f"id{i}" for i in range(30)]
    rows = []
    directions = [("en", q) for q in LANGS] + [(x, x) for x in LANGS[1:]]
    for context, question in directions:
        for i in ids:
            score = f1(context, question, rng)
            rows.append(("M", shots, fmt, context, question, i, float(score == 1), score))
    return pd.DataFrame(
        rows, columns=["model", "shots", "prompt_format", "context_lang", "question_lang", "id", "em", "f1"]
    )


def test_scenario_items_average_the_non_english_directions_per_item():
    items = _items(lambda c, q, rng: {"en": 1.0, "de": 0.5, "zh": 0.0, "ar": 0.25}[q], ids=["a", "b", "c", "d"])
    scenarios = scenario_items(items, "M", 2, "v1")
    assert len(scenarios) == 4
    assert (
        np.allclose(scenarios["en-en"], 100)
        and np.allclose(scenarios["en-x"], 25)
        and np.allclose(scenarios["x-x"], 25)
    )


def test_the_scenario_table_gives_table_2s_columns_with_intervals():
    from xmrc.paper.findings import scenario_table

    items = _items(lambda c, q, rng: {"en": 1.0, "de": 0.5, "zh": 0.0, "ar": 0.25}[q] if c == "en" else 0.5)
    table = scenario_table(items, {("M", 2): "v1"}, SETTINGS).iloc[0]
    assert table["n"] == 30 and table["en-en"] == "100.00 [100.00, 100.00]"
    assert table["mean en-x"] == "25.00 [25.00, 25.00]" and table["mean x-x"] == "50.00 [50.00, 50.00]"
    assert table["en-x / en-en"] == "0.25 [0.25, 0.25]" and table["x-x / en-en"] == "0.50 [0.50, 0.50]"


def test_xquad_items_are_grouped_by_their_paragraph_and_unknown_items_stand_alone():
    known = article_map()
    first = known[(known["title"] == known["title"].iloc[0]) & (known["paragraph_index"] == 0)]["id"].tolist()
    labels = paragraph_of([*first, "not-an-xquad-id"])
    assert len(first) > 1 and labels[first].nunique() == 1
    assert labels["not-an-xquad-id"] == "item#not-an-xquad-id"


def test_holm_adjusts_step_down():
    adjusted, ranks = holm([0.01, 0.04, 0.03, 0.5])
    assert np.allclose(adjusted, [0.04, 0.09, 0.09, 0.5]) and list(ranks) == [0, 2, 1, 3]


def test_a_finding_that_holds_alone_cannot_tell_in_a_family_of_nulls():
    rng = np.random.default_rng(0)
    strong = rng.normal(2.3, 1.0, 10000)  # P(θ* <= 0) ~ 1%: p ~ 0.02 alone
    nulls = [rng.normal(0.0, 1.0, 10000) for _ in range(4)]
    alone = decide([2.3], [strong], [Above()])[0]
    family = decide([2.3] + [0.0] * 4, [strong, *nulls], [Above()] * 5)[0]
    assert alone.verdict == HOLDS and alone.confidence == 0.95
    assert family.verdict == UNSURE and family.p_adjusted > 0.05 and family.confidence == 1 - 0.05 / 5


def test_two_parts_at_the_ceiling_are_not_two_phases():
    # context one layer in 17 above the question, tightly: above 0, yet far from "substantially lower"
    rows = [
        ("en", q, f"id{i}", part, 17 - (part == "question"), 17)
        for q in LANGS
        for i in range(20)
        for part in ("question", "context")
    ]
    relevance = pd.DataFrame(rows, columns=["context_lang", "question_lang", "id", "part", "mrd", "layers"])
    sample = Sample(pd.Series({f"id{i}": f"id{i}" for i in range(20)}), SETTINGS)
    found = evaluate([phase_measure(relevance, sample)], "base").set_index("finding")
    assert found.loc[FINDINGS["phases"].name, "verdict"] == FAILS


def test_a_run_gets_every_finding_once_with_its_population_and_unit(tmp_path):
    ids = article_map()["id"].head(120).tolist()  # real XQuAD ids: the paragraphs of the first articles
    (tmp_path / "tables").mkdir()

    def f1(c, q, rng):
        return 1.0 if q == "en" else 0.2

    items = pd.concat([_items(f1, ids=ids), _items(lambda c, q, rng: 0.1, shots=0, ids=ids)])
    items.to_parquet(tmp_path / "tables" / "item_scores.parquet")
    found = check_findings(tmp_path, "M", "base", BootstrapSettings(resamples=2000))
    assert list(found["finding"]) == [f.name for f in FINDINGS.values()]
    rows = found.set_index("finding")
    gap = rows.loc[FINDINGS["gap"].name]
    assert gap["verdict"] == HOLDS and gap["paragraphs"] == paragraph_of(ids).nunique() < gap["items"] == 120
    assert gap["note"] == "Holm over 3 findings"  # gap, monolingual, shots: the rest have no outputs
    assert rows.loc[FINDINGS["language"].name, "verdict"] == NOT_TESTED  # a claim about post-trained models
    assert sorted(found["confidence"].dropna().round(4)) == [0.95, 0.975, 0.9833]  # Holm's levels, step by step
    assert "p (Holm)" in markdown(found)


def test_an_unknown_population_is_one_line():
    with pytest.raises(XmrcError, match="population must be one of base, post-trained"):
        evaluate([], "chat")


def test_a_similarity_whose_centred_baseline_crosses_zero_still_gets_a_verdict():
    from xmrc.paper.measures import similarity_measures

    # language-wise cosine negative at one layer (a ratio would flip sign there); the last layer 0.3 below
    table = pd.DataFrame(
        [("g", "de", "last", layer, 1.0, -0.1 if layer == 3 else 0.5) for layer in range(5)],
        columns=["group", "lang", "part", "layer", "language_cos", "language_cos_centred"],
    )
    items = pd.DataFrame(
        [("g", "de", "last", layer, f"id{i}", 0.9, 0.8 - 0.3 * (layer == 4)) for layer in range(5) for i in range(12)],
        columns=["group", "lang", "part", "layer", "id", "cos", "cos_centred"],
    )
    sample = Sample(pd.Series({f"id{i}": f"id{i}" for i in range(12)}), SETTINGS)
    found = evaluate(similarity_measures(table, items, sample), "base").set_index("finding")
    assert found.loc[FINDINGS["last_decline"].name, "verdict"] == HOLDS


def test_too_few_paragraphs_cannot_decide_however_alike_the_items():
    from xmrc.paper.measures import oracle_measures

    keys = ["model", "shots", "prompt_format", "context_lang", "question_lang", "id"]
    rows = [("M", 2, "v1", "en", q, f"id{i}", "ok", 4, i % 2 == 0) for q in ("en", "de") for i in range(4)]
    attributions = pd.DataFrame(rows, columns=[*keys, "status", "n_units", "step_correct"])
    items = attributions[keys].assign(em=0.0, f1=0.0)
    sample = Sample(pd.Series({f"id{i}": f"p{i // 2}" for i in range(4)}), SETTINGS)  # 2 paragraphs
    found = evaluate(oracle_measures(attributions, items, sample), "base").set_index("finding")
    close = found.loc[FINDINGS["oracle_close"].name]  # θ = 0 in every draw: [0, 0] inside any margin
    assert close["verdict"] == UNSURE and "too few paragraphs" in close["note"]


def test_the_relevance_of_the_best_format_is_read_once_and_its_token_table_not_at_all(tmp_path):
    from xmrc.paper.findings import layer_measures

    folder = tmp_path / "relevance" / "m"
    folder.mkdir(parents=True)
    rows = [
        ("m", 2, "v1", "en", "de", f"id{i}", part, d, 20)
        for i in range(6)
        for part, d in (("question", 5), ("context", 15))
    ]
    columns = ["model", "shots", "prompt_format", "context_lang", "question_lang", "id", "part", "mrd", "layers"]
    frame = pd.DataFrame(rows, columns=columns)
    frame.to_parquet(folder / "2shot-best.parquet")
    frame.to_parquet(folder / "2shot-v1.parquet")  # the best format also listed by name
    pd.DataFrame({"token": ["x"]}).to_parquet(folder / "2shot-best.tokens.parquet")
    sample = Sample(pd.Series({f"id{i}": f"id{i}" for i in range(6)}), SETTINGS)
    (phases,) = layer_measures(tmp_path, "M", sample)
    assert phases.key == "phases" and phases.items == 6 and phases.estimate == pytest.approx(0.5)
