"""Oracle accuracy (step, sequence) next to the actual F1 of the same items, per model and direction (PNG).

Drawn from `oracle_vs_f1.csv` (see `xmrc.analysis.oracle.tables`): one panel per model, directions on the
x axis in paper order, three lines. Drawn through xmrc.plots.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xmrc.exceptions import XmrcError
from xmrc.io import require_columns
from xmrc.plots import new_figure, save_figure

SERIES = (("step", "oracle, step", "o"), ("sequence", "oracle, sequence", "s"), ("f1", "actual F1", "^"))


def oracle_vs_f1(accuracy: pd.DataFrame, path: str | Path) -> Path:
    require_columns(accuracy, ("model", "direction", "step", "sequence"), "oracle accuracy table")
    if accuracy.empty:
        raise XmrcError("oracle accuracy table has no rows")
    models = list(pd.unique(accuracy["model"]))
    fig = new_figure(figsize=(9, 2.4 * len(models) + 0.8), layout="constrained")
    axes = fig.subplots(len(models), 1, squeeze=False)[:, 0]
    for ax, model in zip(axes, models):
        rows = accuracy[accuracy["model"] == model]
        x = range(len(rows))
        for column, name, marker in SERIES:
            if column in rows.columns and rows[column].notna().any():
                ax.plot(x, rows[column], marker=marker, label=name, alpha=0.85)
        ax.set_xticks(list(x), rows["direction"].tolist(), rotation=45)
        ax.set_ylim(-4, 104)
        ax.set_xlim(-0.4, len(rows) - 0.6)
        ax.set_ylabel("%")
        ax.set_title(model, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", fontsize=8, ncols=3)
    axes[-1].set_xlabel("direction (context-question)")
    return save_figure(fig, path)
