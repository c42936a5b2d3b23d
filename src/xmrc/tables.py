"""Result tables: per-item scores -> direction scores -> the paper's Tables 2, 5 and 6.

Pure pandas. A *direction* is (context_lang, question_lang), labelled f"{context}-{question}":
"en-de" is English context with a German question (scenario en-x), "de-de" is all-German (x-x).

Files written by `write_run_tables` (each as .csv and .md, values in percent, 2 decimals):
  summary_{shots}shot                 Table 2 (left half): en-en, means, ratios, chosen format and the
                                      criterion it was chosen by
  {metric}_{shots}shot_{scenario}     Tables 5/6: model x direction, metric in {f1, em},
                                      scenario in {en-x, x-x}; and x-y (every direction of the run) when
                                      the run has directions beyond the paper's (config key `scenarios`)
  <table>_extra                       with the paper's rows (config key tables.paper_rows): the rows of a
                                      table the paper publishes that are not the paper's (written even when
                                      empty); <table> then holds exactly the paper's rows
The Markdown has a column `n` after the model: the items each value of the row is over (per direction; a
range "a-b" where the row's directions differ). The CSV has the values only.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from xmrc import LANGUAGES
from xmrc.exceptions import XmrcError
from xmrc.io import require_columns, write_csv, write_text

DIRECTION_COLUMNS = ("model", "shots", "prompt_format", "context_lang", "question_lang", "n", "em", "f1")
ITEM_COLUMNS = ("model", "shots", "prompt_format", "context_lang", "question_lang", "id", "em", "f1")
# The paper's table layouts (Tables 5, 6, 10): one table per scenario.
SCENARIOS = {
    "en-x": [("en", x) for x in LANGUAGES],
    "x-x": [(x, x) for x in LANGUAGES if x != "en"],
}
PAPER_DIRECTIONS = SCENARIOS["en-x"] + SCENARIOS["x-x"]
# Beyond the paper: x-y, every (context, question) pair, the paper's 23 first, then context-major.
ALL_DIRECTIONS = PAPER_DIRECTIONS + [
    (c, q) for c in LANGUAGES for q in LANGUAGES if (c, q) not in set(PAPER_DIRECTIONS)
]
TABLE_SCENARIOS = {**SCENARIOS, "x-y": ALL_DIRECTIONS}
METRICS = ("f1", "em")
SUMMARY_COLUMNS = ("en-en", "mean en-x", "mean x-x", "en-x / en-en", "x-x / en-en", "prompt_format", "format_criterion")
NO_FORMAT = "-"  # shown when the input carries no prompt_format (e.g. the paper's published numbers)
# How each model's prompt format is chosen (the paper reports each model with its format of "higher xMRC
# performance"): the directions whose mean F1 decides, and how the summary table states it.
# en-x: the cross-lingual en-x directions (x != en), Table 2's "mean en-x" (the paper's xMRC score);
# all: every direction of the setting, en-en and x-x included.
FORMAT_CRITERIA = {
    "en-x": "higher mean F1 over en-x (x != en)",
    "all": "higher mean F1 over all directions",
}
DEFAULT_FORMAT_CRITERION = "en-x"
# For which scores a model's format is chosen (config key tables.format_choice): per_shots, each shots setting
# on its own scores (a model may be shown in v1 at 0-shot and v2 at 2-shot); per_model, one format for all the
# model's shots settings, the criterion's mean F1 averaged over them (each setting weighted alike).
FORMAT_CHOICES = ("per_shots", "per_model")
DEFAULT_FORMAT_CHOICE = "per_shots"
# A table's rows beyond the paper's go to <table>_extra (write_rows).
EXTRA_SUFFIX = "_extra"
# table stem -> names of the rows the paper's table has (None: the paper has no such table; see
# xmrc.paper.published.run_paper_rows)
RowFilter = Callable[[str], Collection[str] | None]


def label(context_lang: str, question_lang: str) -> str:
    return f"{context_lang}-{question_lang}"


def table_scenarios(pairs: Iterable[tuple[str, str]]) -> list[str]:
    """Which per-language tables a run with these (context, question) directions has: en-x and x-x where it has
    any of their directions, x-y where it has any direction beyond the paper's (then x-y lists all of them)."""
    pairs = set(pairs)
    out = [scenario for scenario, members in SCENARIOS.items() if pairs & set(members)]
    return out + (["x-y"] if pairs - set(PAPER_DIRECTIONS) else [])


def _direction_rank(df: pd.DataFrame) -> pd.Series:
    """Paper order of each row's direction, then the other pairs context-major (ALL_DIRECTIONS)."""
    rank = {d: i for i, d in enumerate(ALL_DIRECTIONS)}
    keys = zip(df["context_lang"], df["question_lang"])
    return pd.Series([rank.get(k, len(rank)) for k in keys], index=df.index)


def _model_rank(df: pd.DataFrame) -> pd.Series:
    order = {m: i for i, m in enumerate(pd.unique(df["model"]))}
    return df["model"].map(order)


def direction_scores(item_scores: pd.DataFrame) -> pd.DataFrame:
    """Mean EM/F1 (percent) and item count per model, shots, format and direction."""
    require_columns(item_scores, ITEM_COLUMNS, "item scores")
    keys = ["model", "shots", "prompt_format", "context_lang", "question_lang"]
    dup = item_scores.duplicated(keys + ["id"])
    if dup.any():
        row = item_scores.loc[dup].iloc[0]
        raise XmrcError(f"item scores hold item {row['id']!r} twice for {row[keys].to_dict()}")
    out = (
        item_scores.groupby(keys, sort=False).agg(n=("id", "size"), em=("em", "mean"), f1=("f1", "mean")).reset_index()
    )
    out[["em", "f1"]] *= 100.0
    out["_m"], out["_d"] = _model_rank(out), _direction_rank(out)
    out = out.sort_values(["_m", "shots", "prompt_format", "_d", "context_lang", "question_lang"])
    return out.drop(columns=["_m", "_d"]).reset_index(drop=True)[list(DIRECTION_COLUMNS)]


def _select_shots(ds: pd.DataFrame, shots: int | None) -> pd.DataFrame:
    """Rows of one shots setting. None means the largest present (Table 2 is 2-shot);
    without a `shots` column all rows are one setting."""
    if "shots" not in ds.columns:
        return ds
    present = sorted(ds["shots"].dropna().unique())
    if shots is None:
        if not present:
            raise XmrcError("direction scores have no rows")
        shots = present[-1]
    if shots not in present:
        raise XmrcError(f"direction scores have no rows for shots={shots} (present: {present})")
    return ds[ds["shots"] == shots]


def check_format_criterion(criterion: str) -> str:
    if criterion not in FORMAT_CRITERIA:
        raise XmrcError(f"unknown format criterion {criterion!r}; expected one of {', '.join(FORMAT_CRITERIA)}")
    return criterion


def check_format_choice(choice: str) -> str:
    if choice not in FORMAT_CHOICES:
        raise XmrcError(f"unknown format choice {choice!r}; expected one of {', '.join(FORMAT_CHOICES)}")
    return choice


def criterion_text(criterion: str, choice: str = DEFAULT_FORMAT_CHOICE, shots: Iterable = ()) -> str:
    """How the summary tables state a row's format choice: the criterion (FORMAT_CRITERIA), and under
    per_model the shots settings it was averaged over (where the model has more than one)."""
    settings = sorted({int(k) for k in shots})
    text = FORMAT_CRITERIA[criterion]
    if choice == "per_model" and len(settings) > 1:
        named = [f"{k}-shot" for k in settings]
        text += ", averaged over " + (", ".join(named[:-1]) + " and " + named[-1])
    return text


def _criterion_rows(ds: pd.DataFrame, criterion: str) -> pd.Series:
    """Which rows decide the format choice under `criterion`."""
    if criterion == "all":
        return pd.Series(True, index=ds.index)
    return (ds["context_lang"] == "en") & (ds["question_lang"] != "en")


def _criterion_means(ds: pd.DataFrame, criterion: str) -> pd.Series:
    """Mean F1 per (model, prompt_format) of one shots setting over the directions of `criterion`; a model
    without any direction of the criterion (an English-only run) over all its directions."""
    overall = ds.groupby(["model", "prompt_format"], sort=True)["f1"].mean()
    deciding = ds[_criterion_rows(ds, criterion)]
    mean_f1 = deciding.groupby(["model", "prompt_format"], sort=True)["f1"].mean().reindex(overall.index)
    undecided = mean_f1.isna().groupby(level="model").transform("all")
    return mean_f1.where(~undecided, overall)


def _with_chosen_format(
    ds: pd.DataFrame,
    criterion: str = DEFAULT_FORMAT_CRITERION,
    choice: str = DEFAULT_FORMAT_CHOICE,
    every_shots: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Keep, per model, the prompt format with the higher mean F1 over the directions of `criterion`
    (FORMAT_CRITERIA; the paper reports each model with its better format). A model without any direction
    of the criterion (an English-only run) is decided on all its directions. Ties go to the format that
    sorts first, so the choice is deterministic.

    `ds` is one shots setting. choice per_model decides on `every_shots` (the rows of all settings; without
    it, or without a shots column, per_model is per_shots): the criterion's mean F1 per shots setting,
    averaged over the settings; only formats `ds` has compete."""
    check_format_criterion(criterion)
    check_format_choice(choice)
    if "prompt_format" not in ds.columns or ds["prompt_format"].isna().all():
        return ds.assign(prompt_format=NO_FORMAT)
    mean_f1 = _criterion_means(ds, criterion)
    if choice == "per_model" and every_shots is not None and "shots" in every_shots.columns:
        per_setting = [_criterion_means(rows, criterion) for _, rows in every_shots.groupby("shots", sort=True)]
        averaged = pd.concat(per_setting).groupby(level=["model", "prompt_format"], sort=True).mean()
        mean_f1 = averaged.reindex(mean_f1.index)
    # A model whose F1 is all NaN still needs a format; -inf keeps idxmax defined.
    best = mean_f1.fillna(float("-inf")).groupby(level="model").idxmax()
    chosen = dict(best.tolist())  # idxmax gives (model, format) pairs
    return ds[ds["prompt_format"] == ds["model"].map(chosen)]


def chosen_rows(
    direction_scores: pd.DataFrame,
    shots: int | None,
    criterion: str = DEFAULT_FORMAT_CRITERION,
    choice: str = DEFAULT_FORMAT_CHOICE,
) -> pd.DataFrame:
    """The rows of one shots setting that the tables show: each model in its format chosen by `criterion`
    (per shots setting or per model: `choice`)."""
    return _with_chosen_format(_select_shots(direction_scores, shots), criterion, choice, direction_scores)


def _wide(ds: pd.DataFrame, metric: str) -> pd.DataFrame:
    """model x direction-label table of one metric, models in order of first appearance."""
    dup = ds.duplicated(["model", "context_lang", "question_lang"])
    if dup.any():
        row = ds.loc[dup].iloc[0]
        raise XmrcError(
            f"direction scores hold {label(row['context_lang'], row['question_lang'])} twice for "
            f"model {row['model']!r}; select one shots/prompt_format setting"
        )
    wide = ds.assign(direction=[label(c, q) for c, q in zip(ds["context_lang"], ds["question_lang"])])
    wide = wide.pivot(index="model", columns="direction", values=metric)
    wide = wide.reindex(pd.unique(ds["model"]))
    wide.index.name, wide.columns.name = "model", None
    return wide


def _prepare(
    ds: pd.DataFrame, metric: str, shots: int | None, criterion: str, choice: str = DEFAULT_FORMAT_CHOICE
) -> pd.DataFrame:
    require_columns(ds, ("model", "context_lang", "question_lang", "f1", metric), "direction scores")
    ds = _with_chosen_format(_select_shots(ds, shots), criterion, choice, ds)
    if ds.empty:
        raise XmrcError("direction scores have no rows to tabulate")
    return ds


def summary_table(
    direction_scores: pd.DataFrame,
    shots: int | None = None,
    criterion: str = DEFAULT_FORMAT_CRITERION,
    choice: str = DEFAULT_FORMAT_CHOICE,
) -> pd.DataFrame:
    """Table 2 (left half): en-en F1, mean F1 over the non-English languages for en-x (en-en
    excluded) and x-x, both ratios to en-en, the chosen prompt format and the criterion it was
    chosen by (criterion_text: FORMAT_CRITERIA, per shots setting or per model by `choice`), one row per model.

    shots=None uses the largest shots value present. Means are over the non-English
    languages present (all 11 in a full run). Values unrounded; F1 in percent.
    """
    ds = _prepare(direction_scores, "f1", shots, criterion, choice)
    wide = _wide(ds, "f1")
    non_en = [x for x in LANGUAGES if x != "en"]
    en_x = wide.reindex(columns=[label("en", x) for x in non_en])
    x_x = wide.reindex(columns=[label(x, x) for x in non_en])
    out = pd.DataFrame(index=wide.index)
    out["en-en"] = wide.reindex(columns=["en-en"])["en-en"]
    out["mean en-x"] = en_x.mean(axis=1)
    out["mean x-x"] = x_x.mean(axis=1)
    english = out["en-en"].where(out["en-en"] > 0)  # a ratio to 0 F1 is undefined, not infinite
    out["en-x / en-en"] = out["mean en-x"] / english
    out["x-x / en-en"] = out["mean x-x"] / english
    out["prompt_format"] = ds.groupby("model", sort=False)["prompt_format"].first().reindex(out.index)
    settings = (
        direction_scores.groupby("model", sort=False)["shots"].unique()
        if "shots" in direction_scores.columns
        else pd.Series(dtype=object)
    )
    out["format_criterion"] = [
        NO_FORMAT if fmt == NO_FORMAT else criterion_text(criterion, choice, settings.get(model, ()))
        for model, fmt in zip(out.index, out["prompt_format"])
    ]
    return out[list(SUMMARY_COLUMNS)]


def language_table(
    direction_scores: pd.DataFrame,
    scenario: str,
    metric: str,
    shots: int | None,
    prompt_format: str | None = None,
    criterion: str = DEFAULT_FORMAT_CRITERION,
    choice: str = DEFAULT_FORMAT_CHOICE,
) -> pd.DataFrame:
    """Tables 5/6: metric (percent) per model and direction of one scenario ("en-x", "x-x" or "x-y").

    prompt_format=None takes each model's better format by `criterion` and `choice` (as summary_table does);
    a name selects that format for every model. Only directions present become columns,
    in paper order.
    """
    if scenario not in TABLE_SCENARIOS:
        raise XmrcError(f"unknown scenario {scenario!r}; expected one of {', '.join(TABLE_SCENARIOS)}")
    if metric not in METRICS:
        raise XmrcError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    ds = direction_scores
    if prompt_format is not None:
        require_columns(ds, ("prompt_format",), "direction scores")
        ds = ds[ds["prompt_format"] == prompt_format]
        if ds.empty:
            raise XmrcError(f"direction scores have no rows for prompt_format={prompt_format!r}")
    ds = _prepare(ds, metric, shots, criterion, choice)
    wide = _wide(ds, metric)
    columns = [label(c, q) for c, q in TABLE_SCENARIOS[scenario] if label(c, q) in wide.columns]
    return wide[columns]


def _count_text(counts: Iterable) -> int | str:
    values = sorted({int(n) for n in counts if pd.notna(n)})
    if not values:
        return ""
    return values[0] if len(values) == 1 else f"{values[0]}–{values[-1]}"


def item_counts(chosen: pd.DataFrame, directions: Iterable[tuple[str, str]] | None = None) -> pd.Series:
    """Per model (order of first appearance): how many items each of its values is over, from the `n` of
    its chosen rows (chosen_rows) in `directions` (None: all): the count, or "a–b" where they differ."""
    rows = chosen
    if directions is not None:
        wanted = set(directions)
        rows = chosen[[d in wanted for d in zip(chosen["context_lang"], chosen["question_lang"])]]
    counts = rows.groupby("model", sort=False)["n"].agg(_count_text)
    return counts.reindex(pd.unique(chosen["model"])).rename("n")


def from_language_table(wide: pd.DataFrame, metric: str = "f1") -> pd.DataFrame:
    """Inverse of language_table: a model x "ctx-q" table (e.g. the paper's) in long form."""
    wide = wide.set_index("model") if "model" in wide.columns else wide
    long = wide.rename_axis(index="model", columns="direction").stack().rename(metric).reset_index()
    long[["context_lang", "question_lang"]] = long["direction"].str.split("-", n=1, expand=True)
    return long[["model", "context_lang", "question_lang", metric]]


def _markdown(df: pd.DataFrame, float_format: str) -> str:
    """A GitHub pipe table (without needing `tabulate`); numbers right-aligned."""
    frame = df.reset_index() if df.index.name else df

    def cell(v) -> str:
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return ""
        text = float_format % v if isinstance(v, float) else str(v)
        return text.replace("|", "\\|")

    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    lines = [
        "| " + " | ".join(str(c) for c in frame.columns) + " |",
        "|" + "|".join("---:" if num else ":---" for num in numeric) + "|",
    ]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write_table(
    df: pd.DataFrame, path_without_suffix: str | Path, float_format: str = "%.2f", n: pd.Series | None = None
) -> list[Path]:
    """Write df as <path>.csv and <path>.md; float_format is a %-style format such as "%.2f". `n` (indexed
    like df, e.g. item_counts) becomes the Markdown's column "n" after the index; the CSV does not have it."""
    base = Path(path_without_suffix)
    markdown = df
    if n is not None:
        counts = list(n.reindex(df.index))
        if all(isinstance(value, (int, np.integer)) for value in counts):
            counts = pd.array(counts, dtype="int64")  # right-aligned as numbers
        else:
            counts = ["" if value is None or value != value else str(value) for value in counts]
        markdown = df.copy()
        markdown.insert(0, "n", counts)
    return [
        write_csv(df, base.with_name(base.name + ".csv"), index=True, float_format=float_format),
        write_text(_markdown(markdown, float_format), base.with_name(base.name + ".md")),
    ]


def write_rows(
    df: pd.DataFrame,
    path_without_suffix: str | Path,
    rows: RowFilter | None = None,
    leave_out: Iterable[str] = (),
    float_format: str = "%.2f",
    n: pd.Series | None = None,
) -> list[Path]:
    """write_table of a model x ... table whose rows may be split. Without `rows` (or where it gives None
    for this table's stem: the paper has no such table) the table is written without the rows named in
    `leave_out`. Otherwise the table gets exactly the paper's rows (rows(stem), names of df's index) not in
    `leave_out`, and every other row goes to <stem>_extra (EXTRA_SUFFIX), written even when empty so a
    run's files do not depend on its scores."""
    base = Path(path_without_suffix)
    left_out = df.index.isin(list(leave_out))
    paper = rows(base.name) if rows is not None else None
    if paper is None:
        return write_table(df[~left_out], base, float_format, n)
    keep = df.index.isin(list(paper)) & ~left_out
    return write_table(df[keep], base, float_format, n) + write_table(
        df[~keep], base.with_name(base.name + EXTRA_SUFFIX), float_format, n
    )


def write_run_tables(
    direction_scores: pd.DataFrame,
    out_dir: str | Path,
    criterion: str = DEFAULT_FORMAT_CRITERION,
    not_in_summary: Iterable[str] = (),
    choice: str = DEFAULT_FORMAT_CHOICE,
    rows: RowFilter | None = None,
) -> list[Path]:
    """All tables of a run, per shots setting (see the module docstring for file names), each model
    in its prompt format chosen by `criterion` and `choice`. Models named in `not_in_summary` (the config's
    extra_models: the paper's Table 2 is the main list) are rows of the per-language tables only.
    With `rows` (the paper's rows of each table, config key tables.paper_rows) a table the paper publishes
    holds exactly its rows and the others go to <table>_extra (write_rows; there the summary's extra rows
    include those of `not_in_summary`). Scenarios without any direction in the run are skipped
    (table_scenarios). The Markdown shows each row's item count (item_counts)."""
    require_columns(direction_scores, DIRECTION_COLUMNS, "direction scores")
    check_format_criterion(criterion)
    check_format_choice(choice)
    out_dir = Path(out_dir)
    paths: list[Path] = []
    for shots in sorted(direction_scores["shots"].dropna().unique()):
        shots = int(shots)
        chosen = chosen_rows(direction_scores, shots, criterion, choice)
        summary = summary_table(direction_scores, shots, criterion, choice)
        n = item_counts(chosen, PAPER_DIRECTIONS)
        paths += write_rows(summary, out_dir / f"summary_{shots}shot", rows, not_in_summary, n=n)
        for scenario in table_scenarios(zip(direction_scores["context_lang"], direction_scores["question_lang"])):
            n = item_counts(chosen, TABLE_SCENARIOS[scenario])
            for metric in METRICS:
                table = language_table(direction_scores, scenario, metric, shots, criterion=criterion, choice=choice)
                if table.shape[1]:
                    paths += write_rows(table, out_dir / f"{metric}_{shots}shot_{scenario}", rows, n=n)
    return paths


def markdown_table(df: pd.DataFrame, float_format: str = "%.2f") -> str:
    """df as a GitHub pipe table (the Markdown that write_table writes), for documents of several tables."""
    return _markdown(df, float_format)
