"""Sample groups of the layer-wise analysis, from per-item F1 of the en-x directions (PAPER.md).

- balanced: F1 > 0.5 in every en-x direction (en-en included);
- en-superior: en-en F1 exceeds the mean F1 of the other en-x directions by more than 0.5.

Groups are per (model, shots, prompt format). An item counts only if it was scored in every en-x
direction. At most `cap` items are kept per group: a seeded random draw, listed in item order.

When a group has fewer than `min_size` (2: the similarity ratio needs pairs) eligible items, it falls back
to all items (capped the same way) and is flagged `fallback`; tiny random models in smoke runs score ~0
everywhere, so their groups are empty and the figures are drawn on all items, labelled as such.

Output table (`groups.parquet`): model (registry key), model_name, shots, prompt_format, group, id,
fallback. Sizes (`group_sizes.csv`): model, model_name, shots, prompt_format, group, eligible, selected,
fallback.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from xmrc.exceptions import XmrcError

GROUPS = ("balanced", "en-superior")
# A sample group: the model, its setting and which group; the columns every table of groups starts with.
GROUP_KEY = ["model", "model_name", "shots", "prompt_format", "group"]
GROUP_COLUMNS = [*GROUP_KEY, "id", "fallback"]
SIZE_COLUMNS = [*GROUP_KEY, "eligible", "selected", "fallback"]
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
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(members, sizes) of every group for one model and setting; see the module docstring."""
    f1 = en_x_f1(items, model_name, shots, prompt_format, languages)
    members, sizes = [], []
    for group in groups:
        eligible = eligible_ids(f1, group)
        fallback = len(eligible) < min_size
        chosen = _draw(list(f1.index) if fallback else eligible, cap, seed)
        key = dict(model=model_key, model_name=model_name, shots=shots, prompt_format=prompt_format, group=group)
        members += [dict(key, id=item, fallback=fallback) for item in chosen]
        sizes.append(dict(key, eligible=len(eligible), selected=len(chosen), fallback=fallback))
    return (pd.DataFrame(members, columns=GROUP_COLUMNS), pd.DataFrame(sizes, columns=SIZE_COLUMNS))


def sample_models(
    items: pd.DataFrame,
    models: Iterable,
    shots: int,
    prompt_formats: Iterable[str],
    languages: Iterable[str],
    groups: Iterable[str] = GROUPS,
    cap: int | None = None,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """sample_groups of every model (xmrc.config.Model) in every prompt format, as one (members, sizes)."""
    members, sizes = [], []
    for model in models:
        for prompt_format in prompt_formats:
            m, s = sample_groups(items, model.key, model.name, shots, prompt_format, languages, groups, cap, seed)
            members.append(m)
            sizes.append(s)
    return pd.concat(members, ignore_index=True), pd.concat(sizes, ignore_index=True)
