"""The paper's findings checked on a run's outputs (xmrc.paper.findings): each verdict follows the paired
bootstrap interval, on synthetic item scores whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xmrc.bootstrap import BootstrapSettings
from xmrc.paper.findings import FAILS, HOLDS, UNSURE, Interval, above, layer_findings, scenario_items, score_findings

LANGS = ["en", "de", "zh", "ar"]
SETTINGS = BootstrapSettings(resamples=200)


def _items(f1, shots=2, fmt="v1", n=30, seed=0) -> pd.DataFrame:
    """Item scores of model M: f1(context_lang, question_lang, rng) gives each item's F1 (0..1)."""
    rng = np.random.default_rng(seed)
    rows = []
    directions = [("en", q) for q in LANGS] + [(x, x) for x in LANGS[1:]]
    for context, question in directions:
        for i in range(n):
            score = f1(context, question, rng)
            rows.append(("M", shots, fmt, context, question, f"id{i}", float(score == 1), score))
    return pd.DataFrame(
        rows, columns=["model", "shots", "prompt_format", "context_lang", "question_lang", "id", "em", "f1"]
    )


def test_a_verdict_follows_the_interval():
    assert above(Interval(3, 1, 5)) == HOLDS
    assert above(Interval(-3, -5, -1)) == FAILS
    assert above(Interval(1, -1, 3)) == UNSURE


def test_scenario_items_average_the_non_english_directions_per_item():
    items = _items(lambda c, q, rng: {"en": 1.0, "de": 0.5, "zh": 0.0, "ar": 0.25}[q], n=4)
    scenarios = scenario_items(items, "M", 2, "v1")
    assert len(scenarios) == 4
    assert (
        np.allclose(scenarios["en-en"], 100)
        and np.allclose(scenarios["en-x"], 25)
        and np.allclose(scenarios["x-x"], 25)
    )


def test_score_findings_hold_where_the_items_say_so_and_not_where_they_do_not():
    # English question best, monolingual non-English next, cross-lingual worst; 2-shot above 0-shot
    def two(c, q, rng):
        return 1.0 if q == "en" else (0.8 if c == q else 0.3) * rng.uniform(0.8, 1.0)

    items = pd.concat([_items(two), _items(lambda c, q, rng: 0.1 * rng.uniform(), shots=0, seed=1)])
    found = pd.DataFrame(score_findings(items, {("M", 2): "v1", ("M", 0): "v1"}, "M", SETTINGS)).set_index("finding")
    assert found.loc["cross-lingual gap: en-x below en-en", "verdict"] == HOLDS
    assert found.loc["base models: monolingual x-x above cross-lingual en-x", "verdict"] == HOLDS
    assert found.loc["2-shot above 0-shot (mean en-x F1)", "verdict"] == HOLDS
    assert "LLaMA-3.1-8B" not in found.loc["cross-lingual gap: en-x below en-en", "paper"]  # a span over base models
    reverse = _items(lambda c, q, rng: 0.9 if c == "en" and q != "en" else 0.2 * rng.uniform())
    found = pd.DataFrame(score_findings(reverse, {("M", 2): "v1"}, "M", SETTINGS)).set_index("finding")
    assert found.loc["base models: monolingual x-x above cross-lingual en-x", "verdict"] == FAILS
    assert "2-shot above 0-shot (mean en-x F1)" not in found.index  # no 0-shot run: nothing to compare


@pytest.mark.parametrize(("question", "context", "verdict"), [(3, 12, HOLDS), (12, 3, FAILS)])
def test_the_two_phase_finding_compares_the_parts_of_the_same_prompts(question, context, verdict):
    rng = np.random.default_rng(0)
    rows = [
        ("en", q, f"id{i}", part, depth + rng.integers(0, 2), 17)
        for q in LANGS
        for i in range(10)
        for part, depth in (("question", question), ("context", context))
    ]
    relevance = pd.DataFrame(rows, columns=["context_lang", "question_lang", "id", "part", "mrd", "layers"])
    similarity = pd.DataFrame(columns=["lang", "part", "layer", "ratio"])
    found = layer_findings(relevance, similarity, SETTINGS)
    assert [f["verdict"] for f in found] == [verdict] and "of 17 layers" in found[0]["ours"]


def test_the_scenario_table_gives_table_2s_columns_with_intervals():
    from xmrc.paper.findings import scenario_table

    items = _items(lambda c, q, rng: {"en": 1.0, "de": 0.5, "zh": 0.0, "ar": 0.25}[q] if c == "en" else 0.5)
    table = scenario_table(items, {("M", 2): "v1"}, SETTINGS).iloc[0]
    assert table["n"] == 30 and table["en-en"] == "100.00 [100.00, 100.00]"
    assert table["mean en-x"] == "25.00 [25.00, 25.00]" and table["mean x-x"] == "50.00 [50.00, 50.00]"
    assert table["en-x / en-en"] == "0.25 [0.25, 0.25]" and table["x-x / en-en"] == "0.50 [0.50, 0.50]"


def test_the_two_phases_cannot_be_told_apart_when_both_parts_reach_the_last_layer():
    rows = [
        ("en", "de", f"id{i}", part, 17 - (i % 2) * (part == "question"), 17)
        for i in range(20)
        for part in ("question", "context")
    ]
    relevance = pd.DataFrame(rows, columns=["context_lang", "question_lang", "id", "part", "mrd", "layers"])
    found = layer_findings(relevance, pd.DataFrame(columns=["lang", "part", "layer", "ratio"]), SETTINGS)
    assert found[0]["verdict"] == UNSURE  # context above question, yet both at the ceiling


def test_a_judge_that_calls_non_empty_answers_blank_leaves_generation_failures_undecided(tmp_path):
    from xmrc.paper.findings import error_findings

    keys = {"model": "M", "shots": 2, "prompt_format": "v1", "context_lang": "en"}
    ids = [{**keys, "question_lang": q, "id": f"id{i}"} for q in ("de", "zh") for i in range(20)]
    pd.DataFrame([{**k, "language_error": i % 10 == 0} for i, k in enumerate(ids)]).to_parquet(
        tmp_path / "language.parquet"
    )
    pd.DataFrame([{**k, "rule_blank": False} for k in ids]).to_parquet(tmp_path / "wrong_answers.parquet")
    judge = pd.DataFrame([{**k, "verdict": 1, "judge": "J"} for k in ids])
    judge.to_parquet(tmp_path / "judge.parquet")
    language, failures = error_findings(tmp_path, "M", SETTINGS)
    assert language["verdict"] == HOLDS and "10.00" in language["ours"]
    assert failures["verdict"] == UNSURE and "agrees with the rule (empty answer) on 0.0%" in failures["ours"]
    judge.assign(verdict=0).to_parquet(tmp_path / "judge.parquet")
    assert error_findings(tmp_path, "M", SETTINGS)[1]["verdict"] == HOLDS
