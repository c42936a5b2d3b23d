"""Stacked bars of error types per model (PNG): what the wrong answers of a scenario are.

Each wrong answer gets one type, generation failures first: blank, refusal, gibberish (the judge), then
language error (Lingua), then "other wrong" (a content error, or a verdict that is not a label). Bars show each
type's share of W, averaged over the scenario's directions that have wrong answers, so they sum to 100.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xmrc.errors.rates import DIRECTION_KEYS, JUDGE_KINDS
from xmrc.plots import new_figure, save_figure

TYPES = ("blank", "refusal", "gibberish", "language error", "other wrong")
COLORS = ("#bdbdbd", "#e6550d", "#fdae6b", "#3182bd", "#a1d99b")


def error_type(verdict: int, language_error: bool) -> str:
    for kind in ("blank", "refusal", "gibberish"):
        if verdict == JUDGE_KINDS[kind]:
            return kind
    return "language error" if language_error else "other wrong"


def type_shares(items: pd.DataFrame) -> pd.DataFrame:
    """model x type, percent of W, mean over directions (rows: models in order of appearance)."""
    typed = items.assign(type=[error_type(v, bool(e)) for v, e in zip(items["verdict"], items["language_error"])])
    per_direction = pd.crosstab([typed[k] for k in DIRECTION_KEYS], typed["type"], normalize="index") * 100
    per_direction = per_direction.reindex(columns=list(TYPES), fill_value=0.0)
    shares = per_direction.groupby(level="model", sort=False).mean()
    return shares.reindex(pd.unique(items["model"]))


def error_types_chart(items: pd.DataFrame, title: str, path: str | Path) -> Path:
    shares = type_shares(items)
    fig = new_figure(figsize=(8, 1.4 + 0.45 * max(len(shares), 1)))
    ax = fig.subplots()
    left = pd.Series(0.0, index=shares.index)
    positions = range(len(shares))
    for kind, color in zip(TYPES, COLORS):
        ax.barh(list(positions), shares[kind], left=left, color=color, edgecolor="white", label=kind)
        left += shares[kind]
    ax.set_yticks(list(positions), list(shares.index))
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of wrong answers (%)")
    ax.set_title(title)
    ax.legend(
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12 - 0.4 / max(len(shares), 1)),
        ncol=len(TYPES),
        fontsize=8,
        frameon=False,
    )
    if shares.empty:
        ax.text(50, 0, "no wrong answers", ha="center", va="center")
    return save_figure(fig, path)
