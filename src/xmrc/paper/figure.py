"""Scatter of the paper's published numbers against ours, one panel per published (part of a) table."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import pandas as pd
from matplotlib.lines import Line2D

from xmrc.plots import new_figure, save_figure

COLUMNS = 4


def comparison_scatter(cells: pd.DataFrame, path: str | Path) -> Path:
    """Paper (x) vs ours (y) with the diagonal of agreement; a run without a compared cell gets one panel
    saying so, so the report always has the figure."""
    panels = list(pd.unique(cells["table"] + ": " + cells["measure"])) if len(cells) else []
    columns = min(COLUMNS, max(len(panels), 1))
    rows = max(math.ceil(len(panels) / columns), 1)
    fig = new_figure(figsize=(3.6 * columns + 2.5, 3.4 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    if not panels:
        axes[0].text(
            0.5,
            0.5,
            "no published cell compared:\nno model of the paper in this run,\nor none of the "
            "tables that hold its numbers\n(why: tables/paper_comparison.md)",
            ha="center",
            va="center",
            transform=axes[0].transAxes,
        )
        axes[0].set_axis_off()
    labels = cells["table"] + ": " + cells["measure"] if len(cells) else pd.Series(dtype=str)
    # one colour per model in every panel, one legend for the figure
    palette = matplotlib.colormaps["tab20"]
    colours = {model: palette(i % palette.N) for i, model in enumerate(pd.unique(cells["model"]))}
    for ax, panel in zip(axes, panels):
        part = cells[labels == panel]
        # the full scale of the unit, so a panel shows how far from the diagonal a difference is
        top = max(1.0 if part["unit"].iloc[0] == "fraction" else 100.0, part["paper"].max(), part["ours"].max())
        ax.plot([0, top], [0, top], color="grey", linewidth=0.8, linestyle="--")
        for model, group in part.groupby("model", sort=False):
            ax.scatter(group["paper"], group["ours"], s=12, color=colours[model], label=model)
        ax.set_title(f"{panel}\n{len(part)} cells, mean |diff| {part['difference'].abs().mean():.2f}", fontsize=8)
        ax.set_xlabel("paper", fontsize=8)
        ax.set_ylabel("ours", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(panels) or 1 :]:
        ax.set_axis_off()
    if colours:
        handles = [
            Line2D([], [], marker="o", linestyle="", color=colour, label=model) for model, colour in colours.items()
        ]
        fig.legend(handles=handles, loc="outside right upper", fontsize=7, title="model", title_fontsize=8)
    fig.suptitle("The paper's published numbers (x) against this run's (y)", fontsize=10)
    return save_figure(fig, path)
