"""Error rates per direction and the paper's tables (rates in percent of the direction's wrong answers W).

  language_error      E_lang: reference detected in the answer language, prediction in the intruding
                      language (see `language`); undefined (NaN) for en-en
  gibberish, refusal, blank    the judge's verdicts 2, 3, 1
  generation_failure  gibberish + refusal + blank
  undecided           prediction that Lingua cannot assign a language (never a language error)
  invalid_verdict     judge output that is not a label (vLLM only; impossible on HF)
A direction with no wrong answer has every rate undefined (NaN, an empty cell), not 0.

Files written by `write_error_tables` (tables as .csv and .md, percent with 2 decimals), for one shots
setting and scenario (`{tag}` = `{shots}shot_{scenario}`):
  error_rates_{tag}.csv         long form: model, shots, prompt_format, context_lang, question_lang, n_items,
                                n_wrong, n_<kind> and <kind> (percent) for every kind above, n_rule_blank
  language_error_{tag}          Table 7: model x direction (directions with an intruding language)
  generation_failure_{tag}      Table 8; gibberish_{tag}, refusal_{tag}, blank_{tag}: Tables 9a-c
  undecided_{tag}               share of W whose prediction Lingua cannot decide
  error_summary_{tag}           Table 2 (right half): mean language, mean generation (over the non-English
                                directions with wrong answers), en-en generation; plus the chosen format
  blank_agreement_{tag}         per model: blanks flagged by rule (empty prediction) and by the judge, both,
                                and agreement (% of W where rule and judge agree on blank or not)
  <table>_extra                 with the paper's rows (config key tables.paper_rows): the rows of a table the
                                paper publishes (xmrc.paper.published.paper_rows) that are not the paper's
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from xmrc.errors import KEYS
from xmrc.errors.wrong import COUNT_COLUMNS, in_scenario
from xmrc.exceptions import XmrcError
from xmrc.io import write_csv
from xmrc.paper.published import paper_rows
from xmrc.tables import EXTRA_SUFFIX, SCENARIOS, RowFilter, label, write_rows

DIRECTION_KEYS = KEYS[:-1]
JUDGE_KINDS = {"gibberish": 2, "refusal": 3, "blank": 1}
RATE_KINDS = ("language_error", "gibberish", "refusal", "blank", "generation_failure", "undecided", "invalid_verdict")
WIDE_TABLES = ("language_error", "generation_failure", "gibberish", "refusal", "blank", "undecided")
SUMMARY_COLUMNS = ("mean language", "mean generation", "en-en generation", "prompt_format")


def _check_keys(frame: pd.DataFrame, wrong: pd.DataFrame, what: str) -> None:
    missing = wrong[KEYS].merge(frame[KEYS], how="left", indicator=True)
    missing = missing[missing["_merge"] == "left_only"]
    if len(missing):
        row = missing.iloc[0]
        raise XmrcError(
            f"{what} lacks wrong answer {row['id']!r} of {row['model']} "
            f"({row['context_lang']}-{row['question_lang']}): {len(missing)} item(s) missing"
        )


def item_types(wrong: pd.DataFrame, language: pd.DataFrame, judge: pd.DataFrame) -> pd.DataFrame:
    """One row per wrong answer with its language result, the judge's verdict and the rule's blank flag."""
    # ids match as text: a table may hold numeric-looking ids as numbers
    wrong, language, judge = (frame.assign(id=frame["id"].astype(str)) for frame in (wrong, language, judge))
    _check_keys(language, wrong, "language table")
    _check_keys(judge, wrong, "judge table")
    items = wrong[KEYS + ["rule_blank"]].merge(
        language[KEYS + ["prediction_lang", "intruding_lang", "language_error"]].drop_duplicates(KEYS), on=KEYS
    )
    return items.merge(judge[KEYS + ["verdict"]].drop_duplicates(KEYS), on=KEYS)


def direction_rates(counts: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Counts and rates per direction (see the module docstring); every direction of `counts` appears."""
    items = items.assign(
        gibberish=items["verdict"] == JUDGE_KINDS["gibberish"],
        refusal=items["verdict"] == JUDGE_KINDS["refusal"],
        blank=items["verdict"] == JUDGE_KINDS["blank"],
        undecided=items["prediction_lang"] == "und",
        invalid_verdict=~items["verdict"].isin([0, 1, 2, 3]),
        rule_judge_blank=items["rule_blank"] & (items["verdict"] == JUDGE_KINDS["blank"]),
    )
    items["generation_failure"] = items["gibberish"] | items["refusal"] | items["blank"]
    flags = [*RATE_KINDS, "rule_blank", "rule_judge_blank"]
    sums = items.groupby(DIRECTION_KEYS, sort=False)[flags].sum().astype(int)
    sums.columns = [f"n_{flag}" for flag in flags]
    out = counts[COUNT_COLUMNS].merge(sums.reset_index(), on=DIRECTION_KEYS, how="left")
    out[sums.columns] = out[sums.columns].fillna(0).astype(int)
    if (out["n_wrong"] < out["n_generation_failure"]).any():
        raise XmrcError("wrong-answer counts are smaller than the typed wrong answers: inputs from different runs")
    defined = out["n_wrong"] > 0
    for kind in RATE_KINDS:
        out[kind] = np.where(defined, 100.0 * out[f"n_{kind}"] / out["n_wrong"].where(defined, 1), np.nan)
    has_intruder = [c != q or c != "en" for c, q in zip(out["context_lang"], out["question_lang"])]
    out.loc[~np.array(has_intruder, dtype=bool), "language_error"] = np.nan
    return out


def wide_table(rates: pd.DataFrame, kind: str, scenario: str) -> pd.DataFrame:
    """model x direction table of one rate, directions in paper order (language_error: en-en left out)."""
    rates = rates[in_scenario(rates, scenario)]
    directions = [d for d in SCENARIOS[scenario] if not (kind == "language_error" and d == ("en", "en"))]
    wide = rates.assign(direction=[label(c, q) for c, q in zip(rates["context_lang"], rates["question_lang"])])
    wide = wide.pivot(index="model", columns="direction", values=kind).reindex(pd.unique(rates["model"]))
    wide = wide.reindex(columns=[label(c, q) for c, q in directions if label(c, q) in wide.columns])
    wide.index.name, wide.columns.name = "model", None
    return wide


def summary(language_wide: pd.DataFrame, failure_wide: pd.DataFrame) -> pd.DataFrame:
    """Table 2 (right half) from Tables 7 and 8: mean language error and mean generation failure over the
    non-English directions (undefined ones skipped), and the en-en generation failure."""
    non_english = [c for c in failure_wide.columns if c != "en-en"]
    out = pd.DataFrame(index=failure_wide.index)
    out["mean language"] = language_wide.reindex(
        index=out.index, columns=[c for c in language_wide.columns if c != "en-en"]
    ).mean(axis=1)
    out["mean generation"] = failure_wide[non_english].mean(axis=1)
    out["en-en generation"] = failure_wide["en-en"] if "en-en" in failure_wide.columns else np.nan
    return out


def blank_agreement(rates: pd.DataFrame) -> pd.DataFrame:
    """Per model: wrong answers, blanks by rule, by judge, by both, and agreement in percent of W."""
    per_model = rates.groupby("model", sort=False)[["n_wrong", "n_rule_blank", "n_blank", "n_rule_judge_blank"]].sum()
    # agree = blank by both + blank by neither
    agree = (
        per_model["n_wrong"] - per_model["n_rule_blank"] - per_model["n_blank"] + 2 * per_model["n_rule_judge_blank"]
    )
    out = per_model.rename(
        columns={"n_rule_blank": "rule blank", "n_blank": "judge blank", "n_rule_judge_blank": "both"}
    )
    out["agreement"] = (100.0 * agree / per_model["n_wrong"]).where(per_model["n_wrong"] > 0)
    out.index.name = "model"
    return out.rename(columns={"n_wrong": "wrong"})


def error_rates(
    counts: pd.DataFrame, wrong: pd.DataFrame, language: pd.DataFrame, judge: pd.DataFrame, scenario: str
) -> pd.DataFrame:
    counts = counts[in_scenario(counts, scenario)]
    if counts.empty:
        raise XmrcError(f"wrong-answer counts have no direction of scenario {scenario}")
    return direction_rates(counts, item_types(wrong, language, judge))


def write_error_tables(
    rates: pd.DataFrame,
    shots: int,
    scenario: str,
    out_dir: str | Path,
    not_in_summary: Iterable[str] = (),
    rows: RowFilter | None = None,
) -> list[Path]:
    """Every table of the module docstring; returns the paths written. Models named in `not_in_summary`
    (the config's extra_models: the paper's Table 2 is the main list) have rows in the per-direction tables
    only, not in error_summary. With `rows` (xmrc.tables.write_rows) a table the paper publishes holds
    exactly its rows, the others (and error_summary's `not_in_summary` rows) go to <table>_extra."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = f"{shots}shot_{scenario}"
    paths = [write_csv(rates, out_dir / f"error_rates_{tag}.csv", float_format="%.4f")]
    wide = {kind: wide_table(rates, kind, scenario) for kind in WIDE_TABLES}
    for kind in WIDE_TABLES:
        paths += write_rows(wide[kind], out_dir / f"{kind}_{tag}", rows)
    table = summary(wide["language_error"], wide["generation_failure"])
    table["prompt_format"] = rates.groupby("model", sort=False)["prompt_format"].first().reindex(table.index)
    paths += write_rows(table[list(SUMMARY_COLUMNS)], out_dir / f"error_summary_{tag}", rows, not_in_summary)
    paths += write_rows(blank_agreement(rates), out_dir / f"blank_agreement_{tag}", rows)
    return paths


def table_names(shots: int, scenario: str, with_paper_rows: bool = False) -> list[str]:
    """File names written by write_error_tables (for the workflow's outputs); with_paper_rows: written with a
    row filter of the paper's rows (the <table>_extra files of the tables the paper publishes)."""
    tag = f"{shots}shot_{scenario}"
    stems = [f"{stem}_{tag}" for stem in (*WIDE_TABLES, "error_summary", "blank_agreement")]
    if with_paper_rows:
        stems += [stem + EXTRA_SUFFIX for stem in stems if paper_rows(stem) is not None]
    return [f"error_rates_{tag}.csv"] + [f"{stem}.{ext}" for stem in stems for ext in ("csv", "md")]
