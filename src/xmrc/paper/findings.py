"""The paper's findings that one base model's run can test, checked on that run's own outputs.

Each finding is a comparison of two quantities measured on the same items (a paired bootstrap over items, as
`xmrc.bootstrap` does for every interval xmrc reports), or a count over languages for the layer curves. The
verdict follows the interval: "holds" when it lies entirely on the paper's side, "does not hold" when it lies
entirely on the other, "cannot tell at this size" otherwise. The paper's numbers are those of its base models
(the only kind a base model can be compared with), read from its published tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from xmrc import tables
from xmrc.bootstrap import BootstrapSettings, mean_intervals
from xmrc.errors import KEYS
from xmrc.intervals import chosen_formats, markdown_scenarios, scenario_intervals, scenario_items
from xmrc.io import read_parquet, read_table
from xmrc.paper.published import published_table

BASE_MODELS = [
    "LLaMA-3.1-8B",
    "LLaMA-3.1-70B",
    "Mistral-V0.3-7B",
    "Qwen-2.5-7B",
    "Qwen-2.5-72B",
    "Gemma-2-9B",
    "DeepSeek-V2-Lite-16B",
]
HOLDS, FAILS, UNSURE = "holds", "does not hold", "cannot tell at this size"
COLUMNS = ["finding", "paper", "ours", "criterion", "verdict"]


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.mean:.2f} [{self.low:.2f}, {self.high:.2f}]"


def interval(values, settings: BootstrapSettings) -> Interval:
    return Interval(*mean_intervals([np.asarray(values, dtype=float)], settings)[0])


def above(difference: Interval, margin: float = 0.0) -> str:
    """The verdict on "a exceeds b" from the interval of a - b."""
    if difference.low > margin:
        return HOLDS
    if difference.high < margin:
        return FAILS
    return UNSURE


def _span(values: pd.Series, digits: int = 2) -> str:
    return f"{values.min():.{digits}f}–{values.max():.{digits}f}"


def _paper_row(stem: str) -> pd.DataFrame:
    frame = published_table(stem)
    return frame.loc[[m for m in BASE_MODELS if m in frame.index]]


def scenario_table(items: pd.DataFrame, chosen: dict, settings: BootstrapSettings) -> pd.DataFrame:
    """Table 2's columns with intervals, per model and shots setting (the chosen format): en-en, mean en-x, mean
    x-x (F1) and the two ratios to en-en; the ratios' intervals from the same resampled items. Cells
    "mean [lo, hi]" of xmrc.intervals.scenario_intervals (the intervals stage's scenario_intervals table)."""
    return markdown_scenarios(scenario_intervals(items, chosen, settings))


def _row(finding: str, paper: str, ours: str, criterion: str, verdict: str) -> dict:
    return dict(zip(COLUMNS, (finding, paper, ours, criterion, verdict)))


def score_findings(items: pd.DataFrame, chosen: dict, model: str, settings: BootstrapSettings) -> list[dict]:
    """Table 2's comparisons and 2-shot vs 0-shot, on F1 in the format the tables show the model in."""
    paper2 = _paper_row("table2_2shot_summary")
    two = scenario_items(items, model, 2, chosen[(model, 2)])
    found = []
    gap = interval(two["en-en"] - two["en-x"], settings)
    found.append(
        _row(
            "cross-lingual gap: en-x below en-en",
            f"base en-x / en-en {_span(paper2['en-x / en-en'])} (all < 1)",
            f"en-en {interval(two['en-en'], settings)}, mean en-x {interval(two['en-x'], settings)}; "
            f"difference {gap} (n={len(two)})",
            "en-en − mean en-x > 0",
            above(gap),
        )
    )
    mono = interval(two["x-x"] - two["en-x"], settings)
    higher = int((paper2["mean x-x"] > paper2["mean en-x"]).sum())
    found.append(
        _row(
            "base models: monolingual x-x above cross-lingual en-x",
            f"x-x > en-x in {higher} of {len(paper2)} base models (x-x / en-en {_span(paper2['x-x / en-en'])})",
            f"mean x-x {interval(two['x-x'], settings)}; x-x − en-x {mono}",
            "mean x-x − mean en-x > 0",
            above(mono),
        )
    )
    if (model, 0) in chosen:
        zero = scenario_items(items, model, 0, chosen[(model, 0)])
        common = two.index.intersection(zero.index)
        shot_gain = interval(two.loc[common, "en-x"] - zero.loc[common, "en-x"], settings)
        zero_paper = _paper_row("table5b_0shot_f1_en-x").drop(columns="en-en").mean(axis=1)
        two_paper = _paper_row("table6a_2shot_f1_en-x").drop(columns="en-en").mean(axis=1)
        gains = (two_paper - zero_paper).dropna()
        found.append(
            _row(
                "2-shot above 0-shot (mean en-x F1)",
                f"base models' 2-shot − 0-shot mean en-x F1 {_span(gains)}",
                f"0-shot {interval(zero.loc[common, 'en-x'], settings)}, 2-shot "
                f"{interval(two.loc[common, 'en-x'], settings)}; difference {shot_gain} (n={len(common)})",
                "2-shot − 0-shot > 0",
                above(shot_gain),
            )
        )
    return found


def error_findings(errors: Path, model: str, settings: BootstrapSettings) -> list[dict]:
    """Section 4.2.1: language errors and generation failures are each a minor share of the wrong en-x answers
    (under a quarter, our reading of "minor"; en-en has no intruding language)."""
    paper2 = _paper_row("table2_2shot_summary")
    language = read_parquet(errors / "language.parquet")
    judge = read_parquet(errors / "judge.parquet")
    language = language[(language["model"] == model) & (language["question_lang"] != "en")]
    judge = judge[(judge["model"] == model) & (judge["question_lang"] != "en")]
    found = []
    if len(language):
        share = interval(100 * language["language_error"].astype(float), settings)
        found.append(
            _row(
                "language errors: a minor share of wrong en-x answers",
                f"base models' mean language error {_span(paper2['mean language'])}% of W",
                f"{share}% of {len(language)} wrong en-x answers",
                "share < 25%",
                above(Interval(25 - share.mean, 25 - share.high, 25 - share.low)),
            )
        )
    if len(judge):
        failed = interval(100 * judge["verdict"].isin([1, 2, 3]).astype(float), settings)
        ours = f"{failed}% of {len(judge)} wrong en-x answers (judge: {judge['judge'].iloc[0]})"
        verdict = above(Interval(25 - failed.mean, 25 - failed.high, 25 - failed.low))
        wrong_file = errors / "wrong_answers.parquet"
        if wrong_file.is_file():
            # A judge that calls non-empty answers blank says nothing about generation failures.
            both = judge.merge(read_parquet(wrong_file)[[*KEYS, "rule_blank"]], on=KEYS)
            agreement = 100 * float(((both["verdict"] == 1) == both["rule_blank"].astype(bool)).mean())
            ours += f"; the judge's blank agrees with the rule (empty answer) on {agreement:.1f}%"
            if agreement < 80:
                verdict = UNSURE
        found.append(
            _row(
                "generation failures (blank, gibberish, refusal): minor",
                f"base models' mean generation failure {_span(paper2['mean generation'])}% of W",
                ours,
                "share < 25%, by a judge whose blanks agree with the rule on >= 80%",
                verdict,
            )
        )
    return found


def oracle_findings(attributions: pd.DataFrame, items: pd.DataFrame, settings: BootstrapSettings) -> list[dict]:
    """Table 3: the oracle (step) finds the answer's sentence more often than the model answers right, and about
    as often with an English as with a non-English question."""
    paper3 = published_table("table3_oracle")
    paper2 = published_table("table2_2shot_summary")
    done = attributions[attributions["status"] == "ok"] if "status" in attributions else attributions
    merged = done.merge(items, on=KEYS, how="inner")
    found = []
    en_x = merged[merged["question_lang"] != "en"]
    if len(en_x):
        over = interval(100 * en_x["step_correct"].astype(float) - 100 * en_x["f1"], settings)
        found.append(
            _row(
                "oracle above the actual answers (en-x)",
                f"LLaMA-3.1-8B: oracle step en-x {paper3.loc['LLaMA-3.1-8B', 'step en-x']:.2f} vs mean en-x F1 "
                f"{paper2.loc['LLaMA-3.1-8B', 'mean en-x']:.2f}",
                f"oracle step {interval(100 * en_x['step_correct'].astype(float), settings)} vs F1 "
                f"{interval(100 * en_x['f1'], settings)} on the same {len(en_x)} items; difference {over}",
                "oracle step − F1 > 0",
                above(over),
            )
        )
    en_en = merged[merged["question_lang"] == "en"]
    if len(en_en) and len(en_x):
        step_en = interval(100 * en_en["step_correct"].astype(float), settings)
        step_x = interval(100 * en_x["step_correct"].astype(float), settings)
        close = abs(step_en.mean - step_x.mean) <= 10 and step_x.low <= step_en.high and step_en.low <= step_x.high
        found.append(
            _row(
                "oracle en-x close to en-en",
                f"LLaMA-3.1-8B step en-en {paper3.loc['LLaMA-3.1-8B', 'step en-en']:.2f}, en-x "
                f"{paper3.loc['LLaMA-3.1-8B', 'step en-x']:.2f}",
                f"step en-en {step_en} (n={len(en_en)}), en-x {step_x} (n={len(en_x)})",
                "means within 10 points and intervals overlap",
                HOLDS if close else UNSURE,
            )
        )
    return found


def layer_findings(relevance: pd.DataFrame, similarity: pd.DataFrame, settings: BootstrapSettings) -> list[dict]:
    """Section 5: question MRD below context MRD (two phases); S(en,x) of questions rising to the middle layers;
    the base model's last-token similarity falling in the last layers."""
    found = []
    parts = relevance.pivot_table(
        index=["context_lang", "question_lang", "id"], columns="part", values="mrd", aggfunc="first"
    )
    if {"question", "context"} <= set(parts.columns):
        pairs = parts[["question", "context"]].dropna()
        if len(pairs):
            depth = interval(pairs["context"] - pairs["question"], settings)
            layers = int(relevance["layers"].max())
            # both parts at the last explained layer: no room to tell the phases apart
            saturated = pairs["question"].mean() >= 0.95 * layers and pairs["context"].mean() >= 0.95 * layers
            found.append(
                _row(
                    "two phases: question MRD below context MRD",
                    "question MRD significantly below context MRD in all languages (LLaMA models, Figs. 3, 12–14)",
                    f"MRD question {interval(pairs['question'], settings)}, context "
                    f"{interval(pairs['context'], settings)} of {layers} layers; context − question {depth} "
                    f"(n={len(pairs)} prompts)",
                    "context − question MRD > 0, both below 95% of the layers",
                    UNSURE if saturated else above(depth),
                )
            )
    question = similarity[(similarity["part"] == "question") & (similarity["lang"] != "en")]
    if len(question):
        rises = []
        for _, curve in question.groupby("lang"):
            curve = curve.groupby("layer")["ratio"].mean()
            middle = curve.index[len(curve) // 2]
            rises.append(curve.loc[middle] - curve.iloc[0])
        rise = interval(rises, settings)
        found.append(
            _row(
                "S(en,x) of questions rises from the embeddings to the middle layers",
                "question similarity to English grows through the first half of the layers (Figs. 4, 19–23)",
                f"middle − embedding ratio {rise} over {len(rises)} languages; rises in "
                f"{sum(r > 0 for r in rises)} of {len(rises)}",
                "middle − embedding > 0",
                above(rise),
            )
        )
    last = similarity[(similarity["part"] == "last") & (similarity["lang"] != "en")]
    if len(last):
        drops = []
        for _, curve in last.groupby("lang"):
            curve = curve.groupby("layer")["ratio"].mean()
            drops.append(curve.iloc[len(curve) // 2 :].max() - curve.iloc[-1])
        drop = interval(drops, settings)
        found.append(
            _row(
                "base model: last-token S(en,x) falls in the last layers",
                "base models' last-input-token similarity declines in the last few layers in every language "
                "(Figs. 7a, 9a)",
                f"peak (second half) − last layer {drop} over {len(drops)} languages; falls in "
                f"{sum(d > 0 for d in drops)} of {len(drops)}",
                "peak − last > 0",
                above(drop),
            )
        )
    return found


def finetune_findings(differences: pd.DataFrame, model: str) -> list[dict]:
    """The second paper: question-translation LoRA raises cross-lingual (en-x) scores."""
    tuned = differences[(differences["comparison"] == "tuned vs base") & (differences["model_a"] == model)]
    en_x = tuned[(tuned["context_lang"] == "en") & (tuned["question_lang"] != "en")]
    if not len(en_x):
        return []
    mean = en_x["f1_diff"].mean()
    better, worse = int((en_x["f1_diff_lo"] > 0).sum()), int((en_x["f1_diff_hi"] < 0).sum())
    verdict = HOLDS if better > worse and better >= len(en_x) / 2 else (FAILS if worse > better else UNSURE)
    return [
        _row(
            "question-translation LoRA raises en-x F1",
            "QT alignment improves cross-lingual performance (Zhang et al., second paper)",
            f"{en_x['model_b'].iloc[0]} − {model}: mean en-x F1 difference {mean:.2f}; intervals above 0 in "
            f"{better}, below 0 in {worse} of {len(en_x)} directions",
            "most en-x directions' paired intervals above 0",
            verdict,
        )
    ]


def run_scenarios(results: str | Path, settings: BootstrapSettings | None = None) -> pd.DataFrame:
    """`scenario_table` of a run's item scores, each model in its chosen format."""
    items = read_parquet(Path(results) / "tables" / "item_scores.parquet")
    return scenario_table(items, chosen_formats(tables.direction_scores(items)), settings or BootstrapSettings())


def check_findings(results: str | Path, model: str, settings: BootstrapSettings | None = None) -> pd.DataFrame:
    """Every finding the run's outputs allow, for `model` (the display name of the tables)."""
    settings = settings or BootstrapSettings()
    results = Path(results)
    items = read_parquet(results / "tables" / "item_scores.parquet")
    chosen = chosen_formats(tables.direction_scores(items))
    found = score_findings(items, chosen, model, settings)
    errors = results / "errors" / "2shot_en-x"
    if (errors / "judge.parquet").is_file():
        found += error_findings(errors, model, settings)
    oracle = sorted((results / "oracle").glob("*/attributions.parquet"))
    if oracle:
        found += oracle_findings(pd.concat([read_parquet(p) for p in oracle]), items, settings)
    relevance = sorted((results / "layers" / "relevance").glob("*/*shot-*[0-9].parquet"))
    if relevance and (results / "layers" / "similarity.csv").is_file():
        similarity = read_table(results / "layers" / "similarity.csv")
        found += layer_findings(pd.concat([read_parquet(p) for p in relevance]), similarity, settings)
    if (results / "tables" / "intervals" / "paired_differences.csv").is_file():
        found += finetune_findings(read_table(results / "tables" / "intervals" / "paired_differences.csv"), model)
    return pd.DataFrame(found, columns=COLUMNS)
