"""The attribution example (paper Figure 11): one sample's most relevant tokens of each prompt part, per layer.

Input: the per-token relevance the relevance step keeps for its example items (`xmrc.analysis.layers.relevance`,
`<shots>shot-<format>.tokens.parquet`). The figure draws the first example item in one direction (the first
non-English question language, else en-en): for each prompt part (task description, demonstrations,
context, question) its `top` tokens by total relevance (sum over layers 1..N of |relevance| / |logit|), as
rows of a heatmap over the layers, with each token's MRD marked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns

from xmrc import LANGUAGES
from xmrc.plots import new_figure, save_figure
from xmrc.prompts import PARTS

PART_LABELS = {
    "task_description": "task description",
    "demonstrations": "demonstrations",
    "context": "context",
    "question": "question",
}


def example_prompt(tokens: pd.DataFrame) -> pd.DataFrame:
    """The token rows of the prompt the figure draws (see the module docstring); empty if there is none."""
    if tokens.empty:
        return tokens
    first = tokens[tokens["id"] == tokens["id"].iloc[0]]
    present = set(first["question_lang"])
    order = [lang for lang in LANGUAGES if lang in present and lang != "en"] + ["en"] + sorted(present)
    lang = next(lang for lang in order if lang in present)
    return first[first["question_lang"] == lang]


def top_tokens(prompt: pd.DataFrame, top: int) -> pd.DataFrame:
    """The `top` tokens of each part by total relevance, parts in prompt-part order, most relevant first."""
    parts = [prompt[prompt["part"] == part].nlargest(top, "total") for part in PARTS]
    return pd.concat(parts, ignore_index=True)


def draw(tokens: pd.DataFrame, top: int, path) -> Path:
    """Write the figure; a notice instead when no example item was explained (empty answers)."""
    prompt = example_prompt(tokens)
    if prompt.empty:
        fig = new_figure(figsize=(6, 2))
        fig.text(0.5, 0.5, "no example item explained (no example kept, or empty answers)", ha="center")
        return save_figure(fig, path, bbox_inches=None)
    chosen = top_tokens(prompt, top)
    heat = np.stack(chosen["relevance"].map(np.asarray).tolist())
    layers = heat.shape[1]
    labels = [
        f"{PART_LABELS[row.part]}: {row.token.strip() or repr(row.token)} (#{row.position})"
        for row in chosen.itertuples()
    ]
    fig = new_figure(figsize=(max(6.0, 1.2 + 0.25 * layers), 1.4 + 0.32 * len(chosen)), layout="constrained")
    ax = fig.subplots()
    sns.heatmap(
        pd.DataFrame(heat, index=labels, columns=range(1, layers + 1)),
        ax=ax,
        cmap="rocket_r",
        xticklabels=max(1, round(layers / 16)),
        cbar_kws={"label": "|relevance| / |logit|"},
    )
    ax.scatter(
        chosen["mrd"].to_numpy() - 0.5,
        np.arange(len(chosen)) + 0.5,
        marker="|",
        s=120,
        color="tab:blue",
        label="MRD of the token",
    )
    ax.legend(loc="upper right", bbox_to_anchor=(1.0, 1.12), fontsize=8, frameon=False)
    ax.set_xlabel(f"layer (N={layers})")
    first = prompt.iloc[0]
    fig.suptitle(
        f"{first['model']}, {first['shots']}-shot {first['prompt_format']}: item {first['id']} "
        f"(en-{first['question_lang']}), explaining {first['target_token']!r}; top {top} tokens per part",
        fontsize=10,
    )
    return save_figure(fig, path)
