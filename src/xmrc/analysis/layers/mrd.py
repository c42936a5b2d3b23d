"""Major Relevance Depth (MRD): how deep a token's representation still matters to the output.

MRD(x) = the smallest n (1-indexed) with  sum_{i<=n} r(x, i)  >=  0.95 * sum_{i<=N} r(x, i),
where r(x, i) is the relevance of token x's representation at layer i (i = 1..N, N = layers - 1; the
paper's definition, "Layer-wise analysis" in PAPER.md). A prompt part (task description, demonstrations,
question, context) gets the largest MRD of its tokens; a group of samples gets the mean of that.

The functions take relevance as given; the relevance stage passes absolute values |r| (see
`xmrc.analysis.layers.relevance`), so that positive and negative contributions cannot cancel into a total of 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from xmrc.analysis.layers.groups import GROUP_KEY

THRESHOLD = 0.95
# Exact arithmetic decides "reaches"; a rounding error in the cumulative sum must not push n one layer on.
_TOLERANCE = 1e-9


def major_relevance_depths(relevance: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """MRD of every token at once: `relevance` has shape (N layers, T tokens); returns T ints in 1..N."""
    relevance = np.asarray(relevance, dtype=np.float64)
    if relevance.ndim == 1:
        relevance = relevance[:, None]
    if relevance.ndim != 2 or relevance.shape[0] == 0:
        raise ValueError(f"relevance must have shape (layers, tokens) with at least one layer, got {relevance.shape}")
    cumulative = np.cumsum(relevance, axis=0)
    total = cumulative[-1]
    reached = cumulative >= threshold * total - _TOLERANCE * np.abs(total)
    return reached.argmax(axis=0) + 1  # the last row always reaches, so argmax finds a True


def major_relevance_depth(relevance_per_layer, threshold: float = THRESHOLD) -> int:
    """MRD of one token: the 1-indexed smallest n whose cumulative relevance reaches 95% of the total."""
    relevance = np.asarray(relevance_per_layer, dtype=np.float64)
    if relevance.ndim != 1:
        raise ValueError(f"relevance_per_layer must be one value per layer, got shape {relevance.shape}")
    return int(major_relevance_depths(relevance[:, None], threshold)[0])


def part_mrds(
    relevance: np.ndarray, part_masks: Mapping[str, np.ndarray], threshold: float = THRESHOLD
) -> dict[str, int | None]:
    """Per prompt part, the largest MRD of its tokens (None for a part with no tokens).

    `relevance`: (N layers, T tokens); `part_masks`: part -> boolean mask over the T tokens.
    """
    depths = major_relevance_depths(relevance, threshold)
    return {
        part: (int(depths[np.asarray(mask, dtype=bool)].max()) if np.any(mask) else None)
        for part, mask in part_masks.items()
    }


MRD_KEYS = ["model", "shots", "prompt_format", "group", "question_lang", "part"]


def mean_part_mrd(sample_mrds: pd.DataFrame) -> pd.DataFrame:
    """Mean over samples of the per-sample part MRD: one row per (model, setting, group, language, part).

    Input columns: MRD_KEYS + id, mrd (NaN where the part is absent). Output: MRD_KEYS + mean_mrd, std_mrd,
    n (samples with that part).
    """
    present = sample_mrds.dropna(subset=["mrd"])
    grouped = present.groupby(MRD_KEYS, sort=False)["mrd"]
    return grouped.agg(mean_mrd="mean", std_mrd="std", n="count").reset_index()


GROUP_MRD_COLUMNS = [*GROUP_KEY, "fallback", "question_lang", "part", "mean_mrd", "std_mrd", "n", "layers"]


def group_mrd_table(relevance: pd.DataFrame, members: pd.DataFrame) -> pd.DataFrame:
    """Mean part MRD per group and question language, from relevance records (`xmrc.analysis.layers.relevance`)
    and group members (`xmrc.analysis.layers.groups`); an item sits in the table once per group that holds it."""
    keys = ["model", "shots", "prompt_format", "id"]
    joined = relevance.merge(members, on=keys, how="inner")
    if joined.empty:
        return pd.DataFrame(columns=GROUP_MRD_COLUMNS)
    means = mean_part_mrd(joined)
    extra = (
        joined.groupby(["model", "shots", "prompt_format", "group"], sort=False)
        .agg(model_name=("model_name", "first"), fallback=("fallback", "first"), layers=("layers", "max"))
        .reset_index()
    )
    return means.merge(extra, on=["model", "shots", "prompt_format", "group"])[GROUP_MRD_COLUMNS]
