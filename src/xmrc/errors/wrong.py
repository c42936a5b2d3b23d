"""W: the wrong answers of one shots setting and one scenario, with what the error steps need.

Each model is taken in one prompt format: its better one by the tables' format criterion
(`xmrc.tables.summary_table`, as the paper reports every model with its better format), or a fixed one.
An item is wrong when its `metric`
(em or f1, 0-1) is at most `max_score` (default em <= 0, i.e. exact match 0).

Files written by the `wrong-answers` command:
  wrong_answers.parquet   KEYS + answer_lang, question, gold, raw_output, prediction, em, f1, rule_blank
                          (rule_blank: the extracted prediction is empty or whitespace)
  wrong_counts.csv        model, shots, prompt_format, context_lang, question_lang, n_items, n_wrong
                          (every direction of the scenario, also those with no wrong answer)
"""

from __future__ import annotations

import pandas as pd

from xmrc.errors import KEYS
from xmrc.exceptions import XmrcError
from xmrc.tables import DEFAULT_FORMAT_CHOICE, DEFAULT_FORMAT_CRITERION, SCENARIOS, summary_table

WRONG_COLUMNS = KEYS + ["answer_lang", "question", "gold", "raw_output", "prediction", "em", "f1", "rule_blank"]
COUNT_COLUMNS = ["model", "shots", "prompt_format", "context_lang", "question_lang", "n_items", "n_wrong"]
METRICS = ("em", "f1")


def chosen_formats(
    direction_scores: pd.DataFrame,
    shots: int,
    criterion: str = DEFAULT_FORMAT_CRITERION,
    choice: str = DEFAULT_FORMAT_CHOICE,
) -> dict[str, str]:
    """model name -> the prompt format chosen by `criterion` at `shots`, per shots setting or per model
    (`choice`): the tables' choice."""
    return summary_table(direction_scores, shots, criterion, choice)["prompt_format"].to_dict()


def in_scenario(frame: pd.DataFrame, scenario: str) -> pd.Series:
    if scenario not in SCENARIOS:
        raise XmrcError(f"unknown scenario {scenario!r}; expected one of {', '.join(SCENARIOS)}")
    directions = set(SCENARIOS[scenario])
    return pd.Series(
        [d in directions for d in zip(frame["context_lang"], frame["question_lang"])], index=frame.index, dtype=bool
    )


def scored_generations(generations: pd.DataFrame, scores: pd.DataFrame, questions: pd.DataFrame) -> pd.DataFrame:
    """Generations joined with their em/f1 and the question text (by id and question language)."""
    if generations.duplicated(KEYS).any():
        row = generations.loc[generations.duplicated(KEYS)].iloc[0]
        raise XmrcError(f"generations hold item {row['id']!r} twice for model {row['model']!r}")
    merged = generations.merge(
        scores[KEYS + ["em", "f1"]].drop_duplicates(KEYS), on=KEYS, how="left", validate="one_to_one"
    )
    unscored = merged["em"].isna()
    if unscored.any():
        row = merged.loc[unscored].iloc[0]
        raise XmrcError(
            f"no score for item {row['id']!r} ({row['model']}, {row['shots']}-shot "
            f"{row['prompt_format']}, {row['context_lang']}-{row['question_lang']})"
        )
    questions = questions[["id", "lang", "question"]].rename(columns={"lang": "question_lang"})
    merged = merged.merge(questions.drop_duplicates(["id", "question_lang"]), on=["id", "question_lang"], how="left")
    missing = merged["question"].isna()
    if missing.any():
        row = merged.loc[missing].iloc[0]
        raise XmrcError(f"XQuAD table has no {row['question_lang']} question for item {row['id']!r}")
    return merged


def select(
    scored: pd.DataFrame,
    shots: int,
    scenario: str,
    formats: dict[str, str] | str,
    metric: str = "em",
    max_score: float = 0.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(W, counts): wrong answers and per-direction item/wrong counts.

    `formats` is one format name for every model, or model name -> format (see `chosen_formats`)."""
    if metric not in METRICS:
        raise XmrcError(f"unknown wrong-answer metric {metric!r}; expected one of {', '.join(METRICS)}")
    rows = scored[(scored["shots"] == shots) & in_scenario(scored, scenario)]
    wanted = rows["model"].map(formats) if isinstance(formats, dict) else pd.Series(formats, index=rows.index)
    unknown = sorted(set(rows.loc[wanted.isna(), "model"]))
    if unknown:
        raise XmrcError(f"no chosen prompt format for model(s) {', '.join(unknown)} in the direction scores")
    rows = rows[rows["prompt_format"] == wanted]
    if rows.empty:
        raise XmrcError(f"no generations for {shots}-shot {scenario} in the chosen prompt format(s)")
    rows = rows.assign(wrong=rows[metric] <= max_score)
    counts = (
        rows.groupby(COUNT_COLUMNS[:5], sort=False).agg(n_items=("id", "size"), n_wrong=("wrong", "sum")).reset_index()
    )
    wrong = rows[rows["wrong"]].copy()
    wrong["rule_blank"] = wrong["prediction"].fillna("").str.strip() == ""
    return wrong[WRONG_COLUMNS].reset_index(drop=True), counts[COUNT_COLUMNS]
