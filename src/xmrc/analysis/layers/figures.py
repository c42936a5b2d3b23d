"""Figures of the layer-wise analysis (PNG, seaborn on matplotlib.figure.Figure; paper Figures 3-10, 12-23).

  mrd_parts(...)          mean MRD of two prompt parts per question language, one panel per sample group:
                          context vs question (Figures 3, 12-14, 18) or task description vs demonstrations
                          (Figures 15-17)
  similarity_curves(...)  S(en, x) per layer (relative depth) for one part, one line per language, one panel
                          per group (Figures 4-6, 19-23)
  similarity_change(...)  the same curves for a series of models (base -> instruct -> tuned) side by side,
                          one group, plus the difference of each later model to the first (Figures 7-10)

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


def _curves(ax, data: pd.DataFrame, languages: list[str], palette, reference: float = 1.0) -> None:
    sns.lineplot(
        data=data,
        x="relative_depth",
        y="ratio",
        hue="lang",
        hue_order=languages,
        palette=palette,
        marker="o" if data["layer"].nunique() < 12 else None,
        markersize=4,
        ax=ax,
    )
    ax.axhline(reference, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlim(0, 1)
    ax.set_xlabel("relative depth (layer / layers)")
    if ax.get_legend() is not None:
        ax.get_legend().remove()


def _language_palette(languages):
    # tab10 plus black: eleven clearly distinct colours for the eleven non-English languages
    colours = list(sns.color_palette("tab10")) + [(0.0, 0.0, 0.0)]
    return {lang: colours[i % len(colours)] for i, lang in enumerate(languages)}


def similarity_curves(
    similarity: pd.DataFrame, setting: Setting, part: str, path, sizes: pd.DataFrame | None = None, groups=GROUPS
) -> Path:
    """S(en, x) per relative depth for one part: a line per language, a panel per group."""
    model, shots, prompt_format = setting
    rows = _select(similarity, model, shots, prompt_format, "similarity table")
    rows = rows[rows["part"] == part]
    languages = _ordered_languages(rows["lang"])
    palette = _language_palette(languages)
    fig = new_figure(figsize=(5.2 * len(groups) + 1.2, 3.8), layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False, sharey=True)[0]
    for ax, group in zip(axes, groups):
        data = rows[rows["group"] == group]
        if data["ratio"].notna().any():
            _curves(ax, data, languages, palette)
        else:
            _no_data(ax, "fewer than 2 items: no ratio")
        k = int(data["k"].max()) if len(data) else 0
        ax.set_title(group_title(group, None, bool(data["fallback"].any()), k), fontsize=10)
        ax.set_ylabel(f"S(en, x), {PART_LABELS[part]}")
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


def similarity_change(
    similarity: pd.DataFrame,
    models: list[str],
    shots: int,
    prompt_format: str,
    part: str,
    path,
    group: str = "balanced",
) -> Path:
    """Curves of several models side by side (one group), then each later model minus the first."""
    frames = [_select(similarity, model, shots, prompt_format, "similarity table") for model in models]
    frames = [frame[(frame["part"] == part) & (frame["group"] == group)] for frame in frames]
    languages = _ordered_languages(pd.concat(frames)["lang"])
    palette = _language_palette(languages)
    panels = len(models) + len(models) - 1
    fig = new_figure(figsize=(4.4 * panels + 1.2, 4.0), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    for ax, frame in zip(axes, frames):
        name = frame["model_name"].iloc[0] if len(frame) else "?"
        if frame["ratio"].notna().any():
            _curves(ax, frame, languages, palette)
        k = int(frame["k"].max()) if len(frame) else 0
        ax.set_title(f"{name}\n{group_title(group, None, bool(frame['fallback'].any()), k)}", fontsize=9)
        ax.set_ylabel(f"S(en, x), {PART_LABELS[part]}")
    base = frames[0].set_index(["lang", "relative_depth"])["ratio"]
    for ax, frame in zip(axes[len(models) :], frames[1:]):
        # Models of one series share the depth grid only if they share the layer count; align on it.
        later = frame.set_index(["lang", "relative_depth"])["ratio"]
        delta = (later - base.reindex(later.index)).rename("ratio").reset_index()
        delta["layer"] = frame["layer"].to_numpy()
        if delta["ratio"].notna().any():
            _curves(ax, delta, languages, palette, reference=0.0)
        ax.set_title(f"change: {frame['model_name'].iloc[0]}\nminus {frames[0]['model_name'].iloc[0]}", fontsize=9)
        ax.set_ylabel("difference in S(en, x)")
    _legend(fig, languages, palette)
    fig.suptitle(
        f"Change in {PART_LABELS[part]} hidden-state similarity to English ({group}), {shots}-shot {prompt_format}",
        fontsize=11,
    )
    return save_figure(fig, path)
