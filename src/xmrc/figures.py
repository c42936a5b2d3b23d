"""Figures of a run, drawn from direction scores (PNG).

Files the workflow draws with these functions (`xmrc figures`), per shots setting:
  heatmap_f1_{shots}shot_{scenario}.png   F1 per model x direction (scenario en-x or x-x),
                                          each model with its better prompt format
  means_{shots}shot.png                   mean en-x vs mean x-x F1 per model (grouped bars); with the
                                          intervals stage on, error bars of its scenario_intervals.csv
and, from the bootstrap intervals (xmrc.intervals, config key `intervals`):
  intervals_f1_{shots}shot.png            F1 per direction with its interval as error bars, one panel
                                          per model (its chosen format)
The workflow also draws, per model and setting when the run has x-y directions (config key `scenarios`):
  matrix_f1/{model}/{shots}shot-{format}.png   context x question F1 matrix (`direction_matrix`)

Figures are drawn and saved through xmrc.plots.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns

from xmrc import LANGUAGES
from xmrc.exceptions import XmrcError
from xmrc.io import require_columns
from xmrc.plots import new_figure, save_figure
from xmrc.tables import (
    DEFAULT_FORMAT_CHOICE,
    DEFAULT_FORMAT_CRITERION,
    DIRECTION_COLUMNS,
    language_table,
    summary_table,
)

# F1 (%) cells annotated to one decimal on one fixed colour scale, so heatmaps compare across figures.
F1_HEATMAP = {
    "vmin": 0,
    "vmax": 100,
    "cmap": "viridis",
    "annot": True,
    "fmt": ".1f",
    "annot_kws": {"fontsize": 8},
    "linewidths": 0.5,
    "cbar_kws": {"label": "F1 (%)"},
}


def heatmap(
    direction_scores: pd.DataFrame,
    scenario: str,
    shots: int | None,
    path: str | Path,
    criterion: str = DEFAULT_FORMAT_CRITERION,
    choice: str = DEFAULT_FORMAT_CHOICE,
) -> Path:
    """Annotated F1 heatmap, model x direction (each model in its format chosen by `criterion` and `choice`,
    as in the tables); NaN cells stay blank."""
    table = language_table(direction_scores, scenario, "f1", shots, criterion=criterion, choice=choice)
    rows, cols = table.shape
    # ~0.75 in per column leaves room for "100.0" at fontsize 8; long model names get the left margin.
    fig = new_figure(figsize=(2.5 + 0.75 * cols, 1.2 + 0.38 * rows))
    ax = fig.subplots()
    sns.heatmap(table.astype(float), ax=ax, **F1_HEATMAP)
    ax.set_xlabel("direction (context-question)")
    ax.set_ylabel("")
    ax.set_title(f"F1, {scenario}, {shots}-shot" if shots is not None else f"F1, {scenario}")
    ax.tick_params(axis="x", labelrotation=45)
    return save_figure(fig, path)


MEANS = ("mean en-x", "mean x-x")


def mean_errors(summary: pd.DataFrame, intervals: pd.DataFrame, shots: int | None) -> dict[str, pd.DataFrame]:
    """Per scenario mean (MEANS): the lower and upper bound of each summary row's interval, from the rows of
    scenario_intervals.csv (xmrc.intervals) of the same model, shots setting and prompt format; NaN where
    the intervals have no such row."""
    if shots is None and len(intervals):
        shots = intervals["shots"].max()  # as summary_table: the largest shots setting
    rows = intervals[intervals["shots"] == shots]
    rows = rows.set_index(["model", "prompt_format"])
    keys = pd.MultiIndex.from_arrays([summary.index, summary["prompt_format"]])
    out = {}
    for mean in MEANS:
        bounds = rows[[f"{mean}_lo", f"{mean}_hi"]].reindex(keys)
        out[mean] = pd.DataFrame(bounds.to_numpy(), index=summary.index, columns=["lo", "hi"])
    return out


def means_chart(
    direction_scores: pd.DataFrame,
    shots: int | None,
    path: str | Path,
    criterion: str = DEFAULT_FORMAT_CRITERION,
    choice: str = DEFAULT_FORMAT_CHOICE,
    intervals: pd.DataFrame | None = None,
) -> Path:
    """Horizontal grouped bars of mean en-x and mean x-x F1 per model (bars labelled). With `intervals` (the
    intervals stage's scenario_intervals.csv) each bar gets the error bar of its bootstrap interval (where the
    table has the model's setting in the format shown)."""
    summary = summary_table(direction_scores, shots, criterion, choice)
    long = summary[list(MEANS)].reset_index().melt(id_vars="model", var_name="scenario", value_name="F1 (%)")
    fig = new_figure(figsize=(8, 1.2 + 0.45 * len(summary)))
    ax = fig.subplots()
    # Explicit model order keeps rows in table order even when a model's bars are NaN.
    order = list(summary.index)
    sns.barplot(data=long, y="model", x="F1 (%)", hue="scenario", hue_order=list(MEANS), order=order, ax=ax)
    errors = mean_errors(summary, intervals, shots) if intervals is not None else None
    # one container per hue level in hue_order (empty where all its bars are NaN); taken before errorbar adds any
    for mean, bars in zip(MEANS, list(ax.containers)):
        if errors is None:
            ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
            continue
        for bar in bars:
            value, centre = bar.get_width(), bar.get_y() + bar.get_height() / 2
            if not np.isfinite(value):
                continue
            # the bar's category: models sit at y = 0, 1, ... in `order`, the hue levels dodged around them
            low, high = errors[mean].iloc[round(centre)]
            if np.isfinite(low) and np.isfinite(high):
                xerr = [[max(value - low, 0.0)], [max(high - value, 0.0)]]
                ax.errorbar(value, centre, xerr=xerr, fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
            end = max(value, high) if np.isfinite(high) else value
            ax.annotate(
                f"{value:.1f}", (end, centre), xytext=(2, 0), textcoords="offset points", va="center", fontsize=7
            )
    ax.set_xlim(0, 105)
    ax.set_ylabel("")
    title = f"Mean F1 over non-English languages, {shots}-shot" if shots is not None else "Mean F1"
    if errors is not None:
        title += " (bootstrap intervals)"
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def interval_chart(intervals: pd.DataFrame, shots: int, path: str | Path) -> Path:
    """F1 per direction with bootstrap error bars, one panel per model (the rows of direction_intervals.csv
    with `chosen`, i.e. the format the tables show); directions in table order, whatever they are."""
    rows = intervals[intervals["chosen"].astype(bool) & (intervals["shots"] == shots)]
    if rows.empty:
        raise XmrcError(f"direction intervals have no rows for shots={shots}")
    models = list(pd.unique(rows["model"]))
    directions = list(dict.fromkeys(f"{c}-{q}" for c, q in zip(rows["context_lang"], rows["question_lang"])))
    # three panels a line for the paper's 23 directions; one, with narrower directions, for an x-y run's 144
    columns = min(3 if len(directions) <= 30 else 1, len(models))
    lines = -(-len(models) // columns)
    per_direction = min(0.28, max(0.08, 12 / len(directions)))
    fig = new_figure(
        figsize=(columns * (1.5 + per_direction * len(directions)), 0.6 + 2.6 * lines), layout="constrained"
    )
    axes = fig.subplots(lines, columns, squeeze=False, sharey=True)
    where = {d: i for i, d in enumerate(directions)}
    for ax, model in zip(axes.flat, models):
        own = rows[rows["model"] == model]
        x = [where[f"{c}-{q}"] for c, q in zip(own["context_lang"], own["question_lang"])]
        error = [own["f1"] - own["f1_lo"], own["f1_hi"] - own["f1"]]
        ax.errorbar(x, own["f1"], yerr=error, fmt="o", markersize=3, capsize=2, linewidth=1)
        ax.set_title(f"{model} ({own['prompt_format'].iloc[0]})", fontsize=8)
        ax.set_xticks(range(len(directions)), directions, rotation=90, fontsize=6 if len(directions) <= 30 else 5)
        ax.set_ylim(0, 100)
        ax.grid(axis="y", linewidth=0.3)
    for ax in axes.flat[len(models) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("F1 (%)")
    fig.suptitle(f"F1 per direction with bootstrap intervals, {shots}-shot", fontsize=10)
    return save_figure(fig, path)


def f1_matrix(direction_scores: pd.DataFrame, model: str, shots: int, prompt_format: str) -> pd.DataFrame:
    """F1 (percent) of one model and setting as a context-language x question-language matrix (languages in
    XQuAD order; a pair the run did not evaluate is NaN)."""
    require_columns(direction_scores, DIRECTION_COLUMNS, "direction scores")
    rows = direction_scores[
        (direction_scores["model"] == model)
        & (direction_scores["shots"] == shots)
        & (direction_scores["prompt_format"] == prompt_format)
    ]
    if rows.empty:
        raise XmrcError(f"direction scores have no rows for model {model!r}, {shots}-shot {prompt_format}")
    present = set(rows["context_lang"]) | set(rows["question_lang"])
    order = [lang for lang in LANGUAGES if lang in present] + sorted(present - set(LANGUAGES))
    matrix = rows.pivot(index="context_lang", columns="question_lang", values="f1").reindex(index=order, columns=order)
    matrix.index.name, matrix.columns.name = "context", "question"
    return matrix


def direction_matrix(
    direction_scores: pd.DataFrame, model: str, shots: int, prompt_format: str, path: str | Path
) -> Path:
    """Annotated heatmap of f1_matrix: rows are the context (= answer) language, columns the question
    language; the diagonal is monolingual, the en row the paper's en-x."""
    matrix = f1_matrix(direction_scores, model, shots, prompt_format)
    size = len(matrix)
    fig = new_figure(figsize=(2.0 + 0.6 * size, 1.6 + 0.5 * size))
    ax = fig.subplots()
    sns.heatmap(matrix.astype(float), ax=ax, square=True, **F1_HEATMAP)
    ax.set_xlabel("question language")
    ax.set_ylabel("context language (answer language)")
    ax.set_title(f"F1, {model}, {shots}-shot {prompt_format}")
    return save_figure(fig, path)
