"""Sample groups of the layer-wise analysis, from per-item F1 of the en-x directions (PAPER.md).

- balanced: F1 > 0.5 in every en-x direction (en-en included);
- en-superior: en-en F1 exceeds the mean F1 of the other en-x directions by more than 0.5.

Groups are per (model, shots, prompt format). An item counts only if it was scored in every en-x
direction. At most `cap` items are kept per group: a seeded random draw, listed in item order.

The prompt format of a setting is a format (v1, v2) or `best` (BEST): each model's format chosen by the
tables' criterion (`tables.format_criterion`, `tables.format_choice`), decided here on the same per-item
scores and by the same function (`xmrc.tables.chosen_rows`) as the summary table's `prompt_format`, so that
analysis-only and `extra_models` models, which have no summary row, get one too. The tables hold the format
itself; column `chosen` marks the rows `best` stands for (False where `best` was not asked for), and the
later jobs of a `best` setting find their format there (`setting_format`). A format asked for twice (best
and the same format by name) is sampled once.

When a group has fewer than `min_size` (2: the similarity ratio needs pairs) eligible items, it falls back
to all items (capped the same way) and is flagged `fallback`; tiny random models in smoke runs score ~0
everywhere, so their groups are empty and the figures are drawn on all items, labelled as such.

Output table (`groups.parquet`): model (registry key), model_name, shots, prompt_format, group, id,
fallback, chosen. Sizes (`group_sizes.csv`): model, model_name, shots, prompt_format, group, eligible,
selected, fallback, chosen.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from xmrc import tables
from xmrc.exceptions import XmrcError

GROUPS = ("balanced", "en-superior")
# The value of layers.prompt_formats (and --format) that stands for each model's format chosen by the tables'
# criterion, as errors.prompt_format's `best` does.
BEST = "best"
# A sample group: the model, its setting and which group; the columns every table of groups starts with.
GROUP_KEY = ["model", "model_name", "shots", "prompt_format", "group"]
GROUP_COLUMNS = [*GROUP_KEY, "id", "fallback", "chosen"]
SIZE_COLUMNS = [*GROUP_KEY, "eligible", "selected", "fallback", "chosen"]
ITEM_COLUMNS = ["model", "shots", "prompt_format", "context_lang", "question_lang", "id", "f1"]
THRESHOLD = 0.5


def en_x_f1(
    items: pd.DataFrame, model_name: str, shots: int, prompt_format: str, languages: Iterable[str]
) -> pd.DataFrame:
    """Item x question-language F1 (0-1) of the en-x directions; items missing a direction are dropped."""
    languages = list(languages)
    rows = items[
        (items["model"] == model_name)
        & (items["shots"] == shots)
        & (items["prompt_format"] == prompt_format)
        & (items["context_lang"] == "en")
        & (items["question_lang"].isin(languages))
    ]
    if rows.empty:
        raise XmrcError(
            f"item scores: no en-x rows for model '{model_name}', {shots}-shot {prompt_format} "
            "(is the model in the run's models, and the setting in its shots/prompt_formats?)"
        )
    order = list(dict.fromkeys(rows["id"]))
    table = rows.pivot_table(index="id", columns="question_lang", values="f1", aggfunc="first")
    table = table.reindex(index=order, columns=languages)
    return table.dropna()


def eligible_ids(f1: pd.DataFrame, group: str, threshold: float = THRESHOLD) -> list[str]:
    if group == "balanced":
        keep = (f1 > threshold).all(axis=1)
    elif group == "en-superior":
        others = f1.drop(columns="en")
        if others.shape[1] == 0:
            raise XmrcError("en-superior needs at least one non-English language")
        keep = f1["en"] - others.mean(axis=1) > threshold
    else:
        raise XmrcError(f"unknown sample group '{group}' (expected one of {', '.join(GROUPS)})")
    return list(f1.index[keep])


def _draw(ids: list[str], cap: int | None, seed: int) -> list[str]:
    if cap is None or len(ids) <= cap:
        return list(ids)
    chosen = set(np.random.default_rng(seed).choice(len(ids), size=cap, replace=False).tolist())
    return [item for position, item in enumerate(ids) if position in chosen]


def sample_groups(
    items: pd.DataFrame,
    model_key: str,
    model_name: str,
    shots: int,
    prompt_format: str,
    languages: Iterable[str],
    groups: Iterable[str] = GROUPS,
    cap: int | None = None,
    seed: int = 0,
    min_size: int = 2,
    chosen: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(members, sizes) of every group for one model and setting; see the module docstring. `chosen`: the
    setting is the model's chosen format (column chosen)."""
    f1 = en_x_f1(items, model_name, shots, prompt_format, languages)
    members, sizes = [], []
    for group in groups:
        eligible = eligible_ids(f1, group)
        fallback = len(eligible) < min_size
        drawn = _draw(list(f1.index) if fallback else eligible, cap, seed)
        key = dict(model=model_key, model_name=model_name, shots=shots, prompt_format=prompt_format, group=group)
        members += [dict(key, id=item, fallback=fallback, chosen=chosen) for item in drawn]
        sizes.append(dict(key, eligible=len(eligible), selected=len(drawn), fallback=fallback, chosen=chosen))
    return (pd.DataFrame(members, columns=GROUP_COLUMNS), pd.DataFrame(sizes, columns=SIZE_COLUMNS))


def chosen_formats(
    items: pd.DataFrame,
    shots: int,
    criterion: str = tables.DEFAULT_FORMAT_CRITERION,
    choice: str = tables.DEFAULT_FORMAT_CHOICE,
) -> dict[str, str]:
    """model name -> its prompt format chosen at `shots` by `criterion` (per shots setting or per model:
    `choice`): `xmrc.tables.chosen_rows` on the direction scores of these per-item scores, the summary table's
    choice. `items` must hold every direction and format the tables see (not only the en-x ones)."""
    rows = tables.chosen_rows(tables.direction_scores(items), shots, criterion, choice)
    return dict(zip(rows["model"], rows["prompt_format"]))


def model_formats(prompt_formats: Iterable[str], best: str | None) -> list[tuple[str, bool]]:
    """(format, chosen) of each setting asked for, `best` (BEST) replaced by the model's chosen format `best`;
    a format asked for twice appears once."""
    asked = list(prompt_formats)
    out: dict[str, bool] = {}
    for prompt_format in asked:
        if prompt_format == BEST:
            if best is None:
                raise XmrcError("prompt format 'best' needs the model's chosen format")
            out[best] = True
        else:
            out.setdefault(prompt_format, False)
    return list(out.items())


def sample_models(
    items: pd.DataFrame,
    models: Iterable,
    shots: int,
    prompt_formats: Iterable[str],
    languages: Iterable[str],
    groups: Iterable[str] = GROUPS,
    cap: int | None = None,
    seed: int = 0,
    chosen: dict[str, str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """sample_groups of every model (xmrc.config.Model) in every prompt format, as one (members, sizes).
    A format `best` is the model's format in `chosen` (model name -> format: chosen_formats)."""
    members, sizes = [], []
    prompt_formats, chosen = list(prompt_formats), chosen or {}
    for model in models:
        if BEST in prompt_formats and model.name not in chosen:
            raise XmrcError(f"item scores: no {shots}-shot scores to choose the format of model '{model.name}' by")
        for prompt_format, is_chosen in model_formats(prompt_formats, chosen.get(model.name)):
            m, s = sample_groups(
                items, model.key, model.name, shots, prompt_format, languages, groups, cap, seed, chosen=is_chosen
            )
            members.append(m)
            sizes.append(s)
    return pd.concat(members, ignore_index=True), pd.concat(sizes, ignore_index=True)


def setting_format(table: pd.DataFrame, model_key: str, shots: int, prompt_format: str, source: str) -> str:
    """The prompt format a setting of the layers stands for: `prompt_format` itself, or for BEST the format
    layer-groups chose for the model (column chosen of `table`, its groups or sizes table read from `source`)."""
    if prompt_format != BEST:
        return prompt_format
    if "chosen" not in table.columns:
        raise XmrcError(f"{source}: no column 'chosen' (written by layer-groups with --formats best)")
    rows = table[(table["model"] == model_key) & (table["shots"] == shots) & table["chosen"].astype(bool)]
    formats = list(dict.fromkeys(rows["prompt_format"]))
    if len(formats) != 1:
        raise XmrcError(
            f"{source}: no chosen format for model '{model_key}' at {shots}-shot (layer-groups was not run "
            "with --formats best for it)"
            if not formats
            else f"{source}: several chosen formats for model '{model_key}' at {shots}-shot: {', '.join(formats)}"
        )
    return formats[0]
