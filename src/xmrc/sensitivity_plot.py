"""The forest plot of a protocol-sensitivity study: per metric, each switch's paired difference (arm minus
baseline) with its bootstrap interval, one marker per model; filled where the interval excludes 0."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xmrc.plots import new_figure, save_figure

MARKERS = ("o", "s", "D", "^", "v")


def forest_plot(table: pd.DataFrame, path: str | Path) -> Path:
    metrics = list(pd.unique(table["metric"])) or ["(no paired metric)"]
    switches = list(pd.unique(table["switch"]))
    models = list(pd.unique(table["model"]))
    columns = min(3, len(metrics))
    rows = -(-len(metrics) // columns)
    figure = new_figure(figsize=(4.2 * columns, 0.32 * max(len(switches), 3) * rows + 1.2 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics):
        found = table[table["metric"] == metric]
        for k, model in enumerate(models):
            rows_of = found[found["model"] == model]
            y = [switches.index(s) + (k - (len(models) - 1) / 2) * 0.25 for s in rows_of["switch"]]
            x = rows_of["difference"].to_numpy()
            error = [x - rows_of["low"].to_numpy(), rows_of["high"].to_numpy() - x]
            ax.errorbar(x, y, xerr=error, fmt="none", ecolor=f"C{k}", elinewidth=1, capsize=2)
            excludes = rows_of["excludes_zero"].to_numpy(dtype=bool)
            marker = MARKERS[k % len(MARKERS)]
            ax.scatter(x[excludes], [v for v, e in zip(y, excludes) if e], marker=marker, color=f"C{k}", label=model)
            ax.scatter(
                x[~excludes],
                [v for v, e in zip(y, excludes) if not e],
                marker=marker,
                facecolors="none",
                edgecolors=f"C{k}",
            )
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.set_yticks(range(len(switches)), switches, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(metric, fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    if models:
        axes[0].legend(fontsize=7, loc="best")
    figure.suptitle(
        "Protocol switches: arm minus baseline (95% paired bootstrap interval; filled: excludes 0)", fontsize=10
    )
    return save_figure(figure, path)
