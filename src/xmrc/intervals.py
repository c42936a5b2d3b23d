"""Confidence intervals of a run's scores (config key `intervals`), from its item scores.

Files (under results/<run>/tables/intervals/; values in percent):
  direction_intervals.csv   every (model, shots, prompt_format, direction) of the item scores: n, F1 and EM
                            with the lower/upper bound of their bootstrap interval (f1_lo, f1_hi, ...), and
                            `chosen` (the format the tables show the model in at that shots setting)
  paired_differences.csv    every pair a table compares, per direction, each side in its chosen format:
                            comparison (instruct vs base, tuned vs base, <k>-shot vs <k0>-shot), side a (the
                            baseline: base model, fewest shots) and side b, n (the items both have), both
                            means, the difference b - a with its paired bootstrap interval and whether that
                            interval excludes 0
  scenario_intervals.csv    Table 2's columns per model and shots setting (its chosen format): en-en, mean
                            en-x and mean x-x F1 over the non-English languages, and the ratios en-x / en-en
                            and x-x / en-en (fractions), each with the bounds of its paired bootstrap interval
                            (<column>_lo, <column>_hi): the items present in every one of the setting's en-en,
                            en-x and x-x directions are resampled together, so a ratio's interval comes from
                            the same resampled items as its means (n: those items)
  direction_intervals.md, paired_differences.md, scenario_intervals.md   (option `markdown`) the same for
                            the chosen formats, cells "mean [lo, hi]"; a difference whose interval excludes
                            0 is marked *

Directions are whatever (context_lang, question_lang) pairs and shots values the item scores hold. Items are
matched by id: the paired bootstrap of two sides resamples the ids both sides were scored on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from xmrc import tables
from xmrc.bootstrap import BootstrapSettings, mean_intervals, resampled_means
from xmrc.io import read_table, require_columns, write_csv, write_text

SETTING_KEYS = ["model", "shots", "prompt_format"]
SCENARIO_MEASURES = ("en-en", "mean en-x", "mean x-x", "en-x / en-en", "x-x / en-en")
SCENARIO_COLUMNS = SETTING_KEYS + ["n"] + [f"{m}{s}" for m in SCENARIO_MEASURES for s in ("", "_lo", "_hi")]
GROUP_KEYS = SETTING_KEYS + ["context_lang", "question_lang"]
METRICS = ("f1", "em")
INTERVAL_COLUMNS = GROUP_KEYS + ["n"] + [f"{m}{s}" for m in METRICS for s in ("", "_lo", "_hi")] + ["chosen"]
DIFFERENCE_COLUMNS = [
    "comparison",
    "model_a",
    "shots_a",
    "prompt_format_a",
    "model_b",
    "shots_b",
    "prompt_format_b",
    "context_lang",
    "question_lang",
    "n",
] + [f"{m}{s}" for m in METRICS for s in ("_a", "_b", "_diff", "_diff_lo", "_diff_hi", "_excludes_0")]


@dataclass(frozen=True)
class ModelPair:
    """Two models a table compares: `other` against its `base` (difference other - base)."""

    comparison: str
    base: str  # display names, as in the item scores
    other: str


def model_pairs(models: Iterable) -> list[ModelPair]:
    """The model pairs among the run's models (xmrc.config.Model): each finetune against the base it was
    trained from (registry finetune.base) and each chat model that is not a finetune against the base
    model of its family and size (registry family, size_b, mode; tiny models also by architecture)."""
    models = list(models)
    by_key = {model.key: model for model in models}

    def kin(model):
        return model.family, model.size_b, (model.tiny or {}).get("architecture")

    pairs = []
    for model in models:
        if model.source == "finetune" and model.finetune:
            base = by_key.get(model.finetune["base"])
            if base is not None:
                pairs.append(ModelPair("tuned vs base", base.name, model.name))
        elif model.mode == "chat":
            pairs += [
                ModelPair("instruct vs base", base.name, model.name)
                for base in models
                if base.mode == "base" and base.source != "finetune" and kin(base) == kin(model)
            ]
    return pairs


@dataclass
class Grouped:
    """Item scores grouped by GROUP_KEYS, computed once for both tables.
    keys: one row per group (order of first appearance); positions: per group, the rows of its items sorted
    by id; ids: each row's id as a rank among the sorted distinct ids; scores: tables.direction_scores;
    chosen: (model, shots) -> the prompt format the tables show (by the format criterion and choice)."""

    items: pd.DataFrame
    keys: pd.DataFrame
    positions: list
    ids: np.ndarray
    scores: pd.DataFrame
    chosen: dict

    @classmethod
    def of(
        cls,
        items: pd.DataFrame,
        criterion: str = tables.DEFAULT_FORMAT_CRITERION,
        choice: str = tables.DEFAULT_FORMAT_CHOICE,
    ) -> Grouped:
        require_columns(items, tables.ITEM_COLUMNS, "item scores")
        scores = tables.direction_scores(items)  # also rejects an item held twice
        codes = items.groupby(GROUP_KEYS, sort=False).ngroup().to_numpy()
        keys = items[GROUP_KEYS].drop_duplicates().reset_index(drop=True)
        # ids ranked in sorted order (positions must not depend on row order); factorizing first keeps the
        # sort to the distinct ids
        codes_of_ids, distinct = pd.factorize(items["id"].astype(str))
        ids = np.argsort(np.argsort(distinct.to_numpy(), kind="stable"))[codes_of_ids]
        order = np.lexsort((ids, codes))
        positions = np.split(order, np.flatnonzero(np.diff(codes[order])) + 1)
        return cls(items, keys, positions, ids, scores, chosen_formats(scores, criterion, choice))


def direction_intervals(
    items: pd.DataFrame | Grouped,
    settings: BootstrapSettings,
    criterion: str = tables.DEFAULT_FORMAT_CRITERION,
    choice: str = tables.DEFAULT_FORMAT_CHOICE,
) -> pd.DataFrame:
    """INTERVAL_COLUMNS per (model, shots, prompt_format, direction); rows in the order of
    tables.direction_scores."""
    grouped = items if isinstance(items, Grouped) else Grouped.of(items, criterion, choice)
    items, keys, positions, scores = grouped.items, grouped.keys, grouped.positions, grouped.scores
    values = {m: items[m].to_numpy(dtype=np.float64) for m in METRICS}
    out = keys.copy()
    out["n"] = [len(p) for p in positions]
    for metric in METRICS:
        result = mean_intervals([values[metric][p] for p in positions], settings) * 100.0
        out[metric], out[f"{metric}_lo"], out[f"{metric}_hi"] = result.T
    chosen = grouped.chosen
    out["chosen"] = [chosen.get((m, s)) == f for m, s, f in zip(out["model"], out["shots"], out["prompt_format"])]
    order = scores[GROUP_KEYS].merge(out, on=GROUP_KEYS, how="left")
    return order[INTERVAL_COLUMNS]


def chosen_formats(
    direction_scores: pd.DataFrame,
    criterion: str = tables.DEFAULT_FORMAT_CRITERION,
    choice: str = tables.DEFAULT_FORMAT_CHOICE,
) -> dict[tuple[str, int], str]:
    """(model, shots) -> the prompt format the tables show the model in at that setting (per_model: the
    same at every setting of the model)."""
    chosen = {}
    for shots in sorted(direction_scores["shots"].unique()):
        rows = tables.chosen_rows(direction_scores, int(shots), criterion, choice)
        chosen.update({(model, int(shots)): fmt for model, fmt in zip(rows["model"], rows["prompt_format"])})
    return chosen


def _sides(items: pd.DataFrame, pairs: Iterable[ModelPair], chosen: dict) -> list[tuple[str, tuple, tuple]]:
    """(comparison, side a, side b), a side being (model, shots, format): every model pair at every shots
    setting both are evaluated in, and every model at each larger shots setting against its fewest shots."""
    shots_of: dict[str, list[int]] = {}
    for model, shots in chosen:
        shots_of.setdefault(model, []).append(shots)
    out = []
    for pair in pairs:
        for shots in sorted(set(shots_of.get(pair.base, [])) & set(shots_of.get(pair.other, []))):
            out.append(
                (
                    pair.comparison,
                    (pair.base, shots, chosen[pair.base, shots]),
                    (pair.other, shots, chosen[pair.other, shots]),
                )
            )
    for model in pd.unique(items["model"]):
        settings = sorted(shots_of.get(model, []))
        for shots in settings[1:]:
            out.append(
                (
                    f"{shots}-shot vs {settings[0]}-shot",
                    (model, settings[0], chosen[model, settings[0]]),
                    (model, shots, chosen[model, shots]),
                )
            )
    return out


def paired_differences(
    items: pd.DataFrame | Grouped,
    pairs: Iterable[ModelPair],
    settings: BootstrapSettings,
    criterion: str = tables.DEFAULT_FORMAT_CRITERION,
    choice: str = tables.DEFAULT_FORMAT_CHOICE,
) -> pd.DataFrame:
    """DIFFERENCE_COLUMNS for every compared pair (see the module docstring) and direction both sides have;
    pairs naming a model the item scores lack are left out (a run need not evaluate both)."""
    grouped = items if isinstance(items, Grouped) else Grouped.of(items, criterion, choice)
    items, keys, positions, ids, chosen = grouped.items, grouped.keys, grouped.positions, grouped.ids, grouped.chosen
    group_of = {tuple(row): i for i, row in enumerate(keys.itertuples(index=False, name=None))}
    directions: dict[tuple, list[tuple[str, str, int]]] = {}
    for (model, shots, fmt, context, question), i in group_of.items():
        directions.setdefault((model, shots, fmt), []).append((context, question, i))
    values = {m: items[m].to_numpy(dtype=np.float64) for m in METRICS}
    rows, vectors = [], {m: [] for m in METRICS}
    for comparison, side_a, side_b in _sides(items, pairs, chosen):
        groups_b = {(c, q): i for c, q, i in directions.get(side_b, [])}
        for context, question, group_a in directions.get(side_a, []):
            group_b = groups_b.get((context, question))
            if group_b is None:
                continue
            pos_a, pos_b = positions[group_a], positions[group_b]
            _, take_a, take_b = np.intersect1d(ids[pos_a], ids[pos_b], assume_unique=True, return_indices=True)
            if not len(take_a):
                continue
            rows.append(
                {
                    "comparison": comparison,
                    "model_a": side_a[0],
                    "shots_a": side_a[1],
                    "prompt_format_a": side_a[2],
                    "model_b": side_b[0],
                    "shots_b": side_b[1],
                    "prompt_format_b": side_b[2],
                    "context_lang": context,
                    "question_lang": question,
                    "n": len(take_a),
                }
            )
            for metric in METRICS:
                a, b = values[metric][pos_a[take_a]], values[metric][pos_b[take_b]]
                rows[-1][f"{metric}_a"], rows[-1][f"{metric}_b"] = 100 * a.mean(), 100 * b.mean()
                vectors[metric].append(b - a)
    out = pd.DataFrame(rows, columns=DIFFERENCE_COLUMNS[:10] + [f"{m}_{s}" for m in METRICS for s in "ab"])
    for metric in METRICS:
        result = mean_intervals(vectors[metric], settings) * 100.0 if rows else np.empty((0, 3))
        out[f"{metric}_diff"], out[f"{metric}_diff_lo"], out[f"{metric}_diff_hi"] = result.T
        out[f"{metric}_excludes_0"] = (out[f"{metric}_diff_lo"] > 0) | (out[f"{metric}_diff_hi"] < 0)
    return out[DIFFERENCE_COLUMNS]


def scenario_items(items: pd.DataFrame, model: str, shots: int, fmt: str) -> pd.DataFrame:
    """Per item (rows, the ids present in every en-en, en-x and x-x direction of the setting): F1 (percent) of
    en-en, mean en-x and mean x-x over the non-English languages; the mean of a column is the scenario mean of
    the paper's tables. A scenario the setting lacks is NaN."""
    rows = items[(items["model"] == model) & (items["shots"] == shots) & (items["prompt_format"] == fmt)]
    wide = rows.pivot_table(index="id", columns=["context_lang", "question_lang"], values="f1") * 100
    en_en = [c for c in wide.columns if c == ("en", "en")]
    en_x = [c for c in wide.columns if c[0] == "en" and c[1] != "en"]
    x_x = [c for c in wide.columns if c[0] == c[1] != "en"]
    wide = wide[en_en + en_x + x_x].dropna()
    missing = pd.Series(np.nan, index=wide.index)
    return pd.DataFrame(
        {
            "en-en": wide[en_en[0]] if en_en else missing,
            "en-x": wide[en_x].mean(axis=1) if en_x else missing,
            "x-x": wide[x_x].mean(axis=1) if x_x else missing,
        }
    )


def scenario_intervals(items: pd.DataFrame, chosen: dict, settings: BootstrapSettings) -> pd.DataFrame:
    """SCENARIO_COLUMNS (see the module docstring) per model and shots setting of `chosen` ((model, shots) ->
    format, e.g. chosen_formats), shots then model; a setting without items in every scenario direction it
    has is left out. Means in percent, ratios as fractions (a ratio to an en-en of 0 is NaN)."""
    rows = []
    low, high = settings.quantiles
    for (model, shots), fmt in sorted(chosen.items(), key=lambda kv: (kv[0][1], str(kv[0][0]))):
        scenarios = scenario_items(items, model, shots, fmt)
        if scenarios.empty:
            continue
        matrix = scenarios[["en-en", "en-x", "x-x"]].to_numpy().T
        means = resampled_means(matrix, settings)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = means[1:] / means[0]
        row = {"model": model, "shots": shots, "prompt_format": fmt, "n": len(scenarios)}
        for name, values, resampled in zip(SCENARIO_MEASURES[:3], matrix, means):
            row[name] = values.mean()
            row[f"{name}_lo"], row[f"{name}_hi"] = np.quantile(resampled, [low, high])
        english = matrix[0].mean()
        for name, index in ((SCENARIO_MEASURES[3], 1), (SCENARIO_MEASURES[4], 2)):
            row[name] = matrix[index].mean() / english if english else np.nan
            resampled = ratios[index - 1]  # inf where a resample's en-en is 0: an unbounded ratio
            bounds = np.nanquantile(resampled, [low, high]) if np.isfinite(resampled).any() else [np.nan] * 2
            row[f"{name}_lo"], row[f"{name}_hi"] = bounds
        rows.append(row)
    return pd.DataFrame(rows, columns=SCENARIO_COLUMNS)


def _cell(mean, low, high, mark: str = "") -> str:
    return f"{mean:.2f} [{low:.2f}, {high:.2f}]{mark}"


def markdown_intervals(intervals: pd.DataFrame) -> pd.DataFrame:
    """The chosen formats' rows with "mean [lo, hi]" cells."""
    rows = intervals[intervals["chosen"]]
    out = rows[SETTING_KEYS].copy()
    out["direction"] = [tables.label(c, q) for c, q in zip(rows["context_lang"], rows["question_lang"])]
    out["n"] = rows["n"]
    for metric in METRICS:
        out[metric.upper()] = [_cell(*v) for v in rows[[metric, f"{metric}_lo", f"{metric}_hi"]].to_numpy()]
    return out.set_index("model")


def markdown_differences(differences: pd.DataFrame) -> pd.DataFrame:
    """One row per compared pair and direction; "difference [lo, hi]" cells, * where the interval excludes 0."""
    d = differences
    out = pd.DataFrame(
        {
            "comparison": d["comparison"],
            "a": [f"{m} ({s}-shot {f})" for m, s, f in zip(d["model_a"], d["shots_a"], d["prompt_format_a"])],
            "b": [f"{m} ({s}-shot {f})" for m, s, f in zip(d["model_b"], d["shots_b"], d["prompt_format_b"])],
            "direction": [tables.label(c, q) for c, q in zip(d["context_lang"], d["question_lang"])],
            "n": d["n"],
        }
    )
    for metric in METRICS:
        out[f"Δ {metric.upper()} (b - a)"] = [
            _cell(v, lo, hi, " *" if excl else "")
            for v, lo, hi, excl in d[
                [f"{metric}_diff", f"{metric}_diff_lo", f"{metric}_diff_hi", f"{metric}_excludes_0"]
            ].to_numpy()
        ]
    return out.set_index("comparison")


def markdown_scenarios(scenarios: pd.DataFrame) -> pd.DataFrame:
    """scenario_intervals with "mean [lo, hi]" cells (means to 2 decimals in percent, ratios as fractions);
    the model a column."""
    out = scenarios[SETTING_KEYS + ["n"]].copy()
    for name in SCENARIO_MEASURES:
        out[name] = [_cell(*v) for v in scenarios[[name, f"{name}_lo", f"{name}_hi"]].to_numpy()]
    return out.reset_index(drop=True)


FILES = ("direction_intervals", "paired_differences", "scenario_intervals")


def write_intervals(
    items: pd.DataFrame,
    pairs: Iterable[ModelPair],
    settings: BootstrapSettings,
    out_dir: str | Path,
    criterion: str = tables.DEFAULT_FORMAT_CRITERION,
    markdown: bool = True,
    choice: str = tables.DEFAULT_FORMAT_CHOICE,
) -> list[Path]:
    """Write the files of the module docstring; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    grouped = Grouped.of(items, criterion, choice)
    intervals = direction_intervals(grouped, settings)
    differences = paired_differences(grouped, pairs, settings)
    scenarios = scenario_intervals(grouped.items, grouped.chosen, settings)
    paths = []
    for name, frame in zip(FILES, (intervals, differences, scenarios)):
        paths.append(write_csv(frame, out_dir / f"{name}.csv", float_format="%.4f"))
    if markdown:
        shown = (markdown_intervals(intervals), markdown_differences(differences), markdown_scenarios(scenarios))
        for name, frame in zip(FILES, shown):
            paths.append(write_text(tables.markdown_table(frame), out_dir / f"{name}.md"))
    return paths


def read_intervals(path: str | Path) -> pd.DataFrame:
    """direction_intervals.csv as written by write_intervals (for the figures)."""
    return read_table(path, required=INTERVAL_COLUMNS)


def read_scenario_intervals(path: str | Path) -> pd.DataFrame:
    """scenario_intervals.csv as written by write_intervals (for the means figure's error bars)."""
    return read_table(path, required=SCENARIO_COLUMNS)
