"""Figures of the layer-wise analysis (PNG, seaborn on matplotlib.figure.Figure; paper Figures 3-10, 12-23).

  mrd_parts(...)          mean MRD of two prompt parts per question language, one panel per sample group:
                          context vs question (Figures 3, 12-14, 18) or task description vs demonstrations
                          (Figures 15-17)
  similarity_curves(...)  S(en, x) per layer (relative depth) for one part, one line per language, one column
                          per group (Figures 4-6, 19-23): top row S on mean-centred states (solid) and on raw
                          states (dashed, the paper's); below, the two cosines S divides, raw (middle row) and
                          centred (bottom row): sample_cos (solid) and language_cos (dashed). Raw cosines near 1
                          in both are saturation (a shared direction), where the raw S says nothing.
  similarity_change(...)  S for a series of models (base -> instruct -> tuned) side by side, one group, plus the
                          difference of each later model to the first (Figures 7-10); centred solid, raw dashed

A panel title names the group and its size; a group with no qualifying sample is drawn on all items and
says so ("no balanced sample: all items, n=4").
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from xmrc import LANGUAGES
from xmrc.analysis.layers.groups import GROUPS
from xmrc.exceptions import XmrcError
from xmrc.plots import new_figure, save_figure

PART_LABELS = {
    "task_description": "task description",
    "demonstrations": "demonstrations",
    "question": "question",
    "context": "context",
    "last": "last input token",
}


class Setting(NamedTuple):
    """The model (registry key) and generation setting a figure shows."""

    model: str
    shots: int
    prompt_format: str


def group_title(group: str, sizes: pd.DataFrame | None, fallback: bool | None = None, n: int | None = None) -> str:
    """'balanced (n=12)' or 'no balanced sample: all items (n=4)'."""
    if sizes is not None and not sizes.empty:
        row = sizes[sizes["group"] == group]
        if not row.empty:
            fallback, n = bool(row["fallback"].iloc[0]), int(row["selected"].iloc[0])
    size = f" (n={n})" if n is not None else ""
    return f"no {group} sample: all items{size}" if fallback else f"{group}{size}"


def _ordered_languages(values) -> list[str]:
    present = set(values)
    return [lang for lang in LANGUAGES if lang in present] + sorted(present - set(LANGUAGES))


def _select(table: pd.DataFrame, model: str, shots: int, prompt_format: str, what: str) -> pd.DataFrame:
    rows = table[(table["model"] == model) & (table["shots"] == shots) & (table["prompt_format"] == prompt_format)]
    if rows.empty:
        raise XmrcError(f"{what}: no rows for model '{model}', {shots}-shot {prompt_format}")
    return rows


def mrd_parts(
    mrd: pd.DataFrame, setting: Setting, parts: tuple[str, str], path, sizes: pd.DataFrame | None = None, groups=GROUPS
) -> Path:
    """Grouped bars: mean MRD of each of `parts` per question language, one panel per group."""
    model, shots, prompt_format = setting
    rows = _select(mrd, model, shots, prompt_format, "MRD table")
    layers = int(rows["layers"].max())
    languages = _ordered_languages(rows["question_lang"])
    fig = new_figure(figsize=(len(groups) * (1.4 + 0.5 * len(languages)), 4.0), layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False, sharey=True)[0]
    labels = [PART_LABELS[p] for p in parts]
    palette = dict(zip(labels, sns.color_palette("deep", 2)))
    for ax, group in zip(axes, groups):
        data = rows[(rows["group"] == group) & rows["part"].isin(parts)].copy()
        data["part"] = data["part"].map(PART_LABELS)
        if data.empty:
            _no_data(ax, f"no {labels[0]} / {labels[1]} tokens in these prompts")
        else:
            _bars(ax, data, languages, labels, palette)
            ax.legend(loc="upper left", fontsize=8, ncols=2, frameon=False)
        fallback = bool(rows.loc[rows["group"] == group, "fallback"].any())
        ax.set_title(group_title(group, sizes, fallback), fontsize=10)
        ax.set_ylim(0, (layers + 0.5) * 1.15)  # headroom for the legend
        ax.set_xlabel("question language (en-x)")
        ax.set_ylabel(f"mean MRD (layer, N={layers})")
    name = rows["model_name"].iloc[0]
    fig.suptitle(
        f"{name}: mean MRD of {PART_LABELS[parts[0]]} vs {PART_LABELS[parts[1]]}, {shots}-shot {prompt_format}",
        fontsize=11,
    )
    return save_figure(fig, path)


def setting_figures(
    mrd: pd.DataFrame,
    similarity: pd.DataFrame,
    sizes: pd.DataFrame,
    model: str,
    shots: int,
    prompt_format: str,
    mrd_paths: dict[tuple[str, str], Path | str],
    similarity_paths: dict[str, Path | str],
) -> list[Path]:
    """The figures of one model and setting: mrd_parts for each pair of parts in `mrd_paths`, then
    similarity_curves for each part in `similarity_paths`, their groups titled with the setting's sizes
    (group_sizes.csv of layer-groups)."""
    sizes = sizes[(sizes["model"] == model) & (sizes["shots"] == shots) & (sizes["prompt_format"] == prompt_format)]
    setting = Setting(model, shots, prompt_format)
    paths = [mrd_parts(mrd, setting, parts, path, sizes) for parts, path in mrd_paths.items()]
    return paths + [
        similarity_curves(similarity, setting, part, path, sizes) for part, path in similarity_paths.items()
    ]


def _no_data(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)


def _bars(ax, data: pd.DataFrame, languages: list[str], labels: list[str], palette) -> None:
    sns.barplot(
        data, x="question_lang", y="mean_mrd", hue="part", order=languages, hue_order=labels, palette=palette, ax=ax
    )


def _curves(
    ax, data: pd.DataFrame, languages: list[str], palette, reference: float | None = 1.0, y: str = "ratio", **line
) -> None:
    """A line of column `y` over relative depth per language (matplotlib `line` options: linestyle, ...)."""
    marker = "o" if data["layer"].nunique() < 12 else None
    for lang in languages:
        rows = data[data["lang"] == lang].sort_values("relative_depth")
        if rows[y].notna().any():
            ax.plot(rows["relative_depth"], rows[y], color=palette[lang], marker=marker, markersize=4, **line)
    if reference is not None:
        ax.axhline(reference, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlim(0, 1)
    ax.set_xlabel("relative depth (layer / layers)")


def _language_palette(languages):
    # tab10 plus black: eleven clearly distinct colours for the eleven non-English languages
    colours = list(sns.color_palette("tab10")) + [(0.0, 0.0, 0.0)]
    return {lang: colours[i % len(colours)] for i, lang in enumerate(languages)}


def _pair(ax, data: pd.DataFrame, languages, palette, solid: str, dashed: str, reference: float | None) -> None:
    """Two columns of the similarity table as a line per language each: `solid` and `dashed`."""
    for column, style in ((solid, "-"), (dashed, "--")):
        if data[column].notna().any():
            _curves(ax, data, languages, palette, reference, y=column, linestyle=style)


COSINES = "cos(e_k, x_k) (solid),\ncos(x_i, x_j) (dashed)"
# The rows of a similarity figure: (solid column, dashed column, y label, reference line).
SIMILARITY_ROWS = (
    ("ratio_centred", "ratio", "S(en, x): centred (solid),\nraw (dashed)", 1.0),
    ("sample_cos", "language_cos", f"raw cosines: {COSINES}", None),
    ("sample_cos_centred", "language_cos_centred", f"centred cosines: {COSINES}", 0.0),
)


def similarity_curves(
    similarity: pd.DataFrame, setting: Setting, part: str, path, sizes: pd.DataFrame | None = None, groups=GROUPS
) -> Path:
    """S(en, x) per relative depth for one part, centred and raw, and the cosines it divides (SIMILARITY_ROWS):
    a line per language, a column of panels per group."""
    model, shots, prompt_format = setting
    rows = _select(similarity, model, shots, prompt_format, "similarity table")
    rows = rows[rows["part"] == part]
    languages = _ordered_languages(rows["lang"])
    palette = _language_palette(languages)
    fig = new_figure(figsize=(5.2 * len(groups) + 1.6, 9.6), layout="constrained")
    grid = fig.subplots(len(SIMILARITY_ROWS), len(groups), squeeze=False, sharex=True, sharey="row")
    for column, group in enumerate(groups):
        data = rows[rows["group"] == group]
        k = int(data["k"].max()) if len(data) else 0
        for (solid, dashed, label, reference), ax in zip(SIMILARITY_ROWS, grid[:, column]):
            if data[[solid, dashed]].notna().any().any():
                _pair(ax, data, languages, palette, solid, dashed, reference)
            else:
                _no_data(ax, "fewer than 2 items: no ratio")
            ax.set_ylabel(label, fontsize=8)
            if solid != "ratio_centred":
                # cosines on their whole scale up to 1, so that saturation (both near 1) shows as such
                lowest = rows[[solid, dashed]].min().min()
                ax.set_ylim(min(-0.05, lowest - 0.05) if pd.notna(lowest) else -0.05, 1.05)
        for ax in grid[:-1, column]:
            ax.set_xlabel("")
        grid[0, column].set_title(group_title(group, None, bool(data["fallback"].any()), k), fontsize=10)
    _legend(fig, languages, palette)
    fig.suptitle(
        f"{rows['model_name'].iloc[0] if len(rows) else model}: {PART_LABELS[part]} hidden-state "
        f"similarity to English, {shots}-shot {prompt_format}",
        fontsize=11,
    )
    return save_figure(fig, path)


def _legend(fig: Figure, languages, palette) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=palette[lang], label=lang) for lang in languages]
    fig.legend(handles=handles, loc="outside right center", fontsize=8, title="x", frameon=False)


def _format_label(formats: dict[str, str]) -> str:
    """'v2', or each model's format where they differ."""
    distinct = list(dict.fromkeys(formats.values()))
    return distinct[0] if len(distinct) == 1 else "formats " + ", ".join(f"{m}: {f}" for m, f in formats.items())


def similarity_change(
    similarity: pd.DataFrame,
    models: list[str],
    shots: int,
    prompt_format: str | dict[str, str],
    part: str,
    path,
    group: str = "balanced",
) -> Path:
    """Curves of several models side by side (one group), then each later model minus the first; S on
    centred states solid, on raw states dashed. `prompt_format`: one for all, or each model's."""
    formats = prompt_format if isinstance(prompt_format, dict) else dict.fromkeys(models, prompt_format)
    frames = [_select(similarity, model, shots, formats[model], "similarity table") for model in models]
    frames = [frame[(frame["part"] == part) & (frame["group"] == group)] for frame in frames]
    languages = _ordered_languages(pd.concat(frames)["lang"])
    palette = _language_palette(languages)
    panels = len(models) + len(models) - 1
    fig = new_figure(figsize=(4.4 * panels + 1.2, 4.0), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    for ax, frame in zip(axes, frames):
        name = frame["model_name"].iloc[0] if len(frame) else "?"
        _pair(ax, frame, languages, palette, "ratio_centred", "ratio", 1.0)
        k = int(frame["k"].max()) if len(frame) else 0
        ax.set_title(f"{name}\n{group_title(group, None, bool(frame['fallback'].any()), k)}", fontsize=9)
        ax.set_ylabel(f"S(en, x), {PART_LABELS[part]}: centred (solid), raw (dashed)", fontsize=8)
    columns = ["ratio_centred", "ratio"]
    base = frames[0].set_index(["lang", "relative_depth"])[columns]
    for ax, frame in zip(axes[len(models) :], frames[1:]):
        # Models of one series share the depth grid only if they share the layer count; align on it.
        later = frame.set_index(["lang", "relative_depth"])[columns]
        delta = (later - base.reindex(later.index)).reset_index()
        delta["layer"] = frame["layer"].to_numpy()
        _pair(ax, delta, languages, palette, "ratio_centred", "ratio", 0.0)
        ax.set_title(f"change: {frame['model_name'].iloc[0]}\nminus {frames[0]['model_name'].iloc[0]}", fontsize=9)
        ax.set_ylabel("difference in S(en, x): centred (solid), raw (dashed)", fontsize=8)
    _legend(fig, languages, palette)
    fig.suptitle(
        f"Change in {PART_LABELS[part]} hidden-state similarity to English ({group}), {shots}-shot "
        f"{_format_label(formats)}",
        fontsize=11,
    )
    return save_figure(fig, path)
